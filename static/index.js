/*
 * Playhouse index page: connects to the broadcast channel and shows the
 * connection status and received messages. Loaded with `defer`, after
 * ws4redis.js. No inline handlers, no innerHTML (CSP-friendly).
 */
(function () {
    'use strict';

    const MAX_ITEMS = 100;
    const STATES = ['connecting', 'connected', 'disconnected'];

    function init() {
        const statusEl = document.getElementById('status');
        const listEl = document.getElementById('messages');
        const heartbeat = document.body.dataset.heartbeat || null;

        /** @param {string} state one of STATES */
        function setStatus(state) {
            statusEl.textContent = state;
            for (const s of STATES) {
                statusEl.classList.toggle('status-' + s, s === state);
            }
        }

        /** Prepend a message as text, keeping at most MAX_ITEMS entries. */
        /** A JSON notice shows as its text and author; anything else as-is. */
        function describe(msg) {
            const text = typeof msg === 'string' ? msg : String(msg);
            try {
                const data = JSON.parse(text);
                if (data && data.type === 'notice' && typeof data.text === 'string') {
                    return data.author ? `${data.text} — ${data.author}` : data.text;
                }
            } catch (e) {
                // plain text (e.g. from an external ws4redis publisher)
            }
            return text;
        }

        function addMessage(msg) {
            const li = document.createElement('li');
            li.textContent = describe(msg);
            listEl.insertBefore(li, listEl.firstChild);
            while (listEl.children.length > MAX_ITEMS) {
                listEl.removeChild(listEl.lastElementChild);
            }
        }

        const state = {client: null, received: []};
        window.playhouseIndex = state;

        state.client = new window.WS4Redis({
            uri: '/ws/notifications?subscribe-broadcast',
            heartbeat_msg: heartbeat,
            connecting: () => setStatus('connecting'),
            connected: () => setStatus('connected'),
            disconnected: () => setStatus('disconnected'),
            receive_message: (msg) => {
                state.received.push(msg);
                addMessage(msg);
            },
        });
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', init);
    } else {
        init();
    }
}());
