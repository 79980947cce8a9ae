/*
 * Playhouse notices: for signed-in visitors, listens on the broadcast channel
 * of the "notifications" facility and shows each message as a toast in
 * #toasts. Loaded with `defer` on every page, after ws4redis.js.
 *
 * A message is either our JSON notice ({"type": "notice", "text", "author"})
 * or anything else, shown as-is (ws4redis' RedisPublisher sends plain text).
 * Text only through textContent, never innerHTML (CSP- and XSS-safe).
 *
 * On connect the server replays the channel's kept last message to late
 * joiners (ws4redis semantics). A replay this tab has already shown (same
 * notice id, or same plain text) is recorded in `received` but not shown
 * again, so a notice does not pop up on every page load.
 */
(function () {
    'use strict';

    const URI = '/ws/notifications?subscribe-broadcast&subscribe-user';
    const MAX_TOASTS = 5;
    const HIDE_AFTER_MS = 20000;
    /** Messages this soon after the socket opened may be the replayed last message. */
    const REPLAY_WINDOW_MS = 3000;
    const SEEN_KEY = 'playhouse.notices.seen';
    const MAX_SEEN = 50;

    /** Keys of messages shown in this tab (sessionStorage: per tab, survives navigation). */
    const seen = {
        load() {
            try {
                const keys = JSON.parse(sessionStorage.getItem(SEEN_KEY) || '[]');
                return Array.isArray(keys) ? keys : [];
            } catch (e) {
                return [];
            }
        },
        has(key) {
            return this.load().includes(key);
        },
        add(key) {
            const keys = this.load().filter((k) => k !== key);
            keys.push(key);
            try {
                sessionStorage.setItem(SEEN_KEY, JSON.stringify(keys.slice(-MAX_SEEN)));
            } catch (e) { /* storage full or disabled: show replays again */ }
        },
    };

    /**
     * @param {string} raw a received message
     * @returns {{text: string, author: ?string, key: string}} `key` identifies
     *     the message for replay detection
     */
    function parse(raw) {
        const text = typeof raw === 'string' ? raw : String(raw);
        try {
            const msg = JSON.parse(text);
            if (msg && typeof msg === 'object' && msg.type === 'notice' && typeof msg.text === 'string') {
                return {
                    text: msg.text,
                    author: typeof msg.author === 'string' ? msg.author : null,
                    key: msg.id ? 'id:' + msg.id : 'raw:' + text,
                };
            }
        } catch (e) { /* not JSON: plain text */ }
        return {text: text, author: null, key: 'raw:' + text};
    }

    function dismiss(toast) {
        if (toast.parentNode) {
            toast.parentNode.removeChild(toast);
        }
    }

    /** Add a toast for `notice` to `container`, newest at the end. */
    function show(container, notice) {
        const toast = document.createElement('div');
        toast.className = 'toast';

        const body = document.createElement('div');
        body.className = 'toast-body';
        const text = document.createElement('p');
        text.className = 'toast-text';
        text.textContent = notice.text;
        body.appendChild(text);
        if (notice.author) {
            const author = document.createElement('small');
            author.className = 'toast-author';
            author.textContent = '— ' + notice.author;
            body.appendChild(author);
        }

        const close = document.createElement('button');
        close.type = 'button';
        close.className = 'toast-close';
        close.setAttribute('aria-label', 'Dismiss');
        close.textContent = '×';
        close.addEventListener('click', () => dismiss(toast));

        toast.appendChild(body);
        toast.appendChild(close);
        container.appendChild(toast);
        setTimeout(() => dismiss(toast), HIDE_AFTER_MS);

        while (container.querySelectorAll('.toast').length > MAX_TOASTS) {
            dismiss(container.querySelector('.toast'));
        }
    }

    function init() {
        if (document.body.dataset.signedIn !== 'yes') {
            return;
        }
        let container = document.getElementById('toasts');
        if (!container) {
            container = document.createElement('div');
            container.id = 'toasts';
            container.className = 'toasts';
            container.setAttribute('aria-live', 'polite');
            document.body.appendChild(container);
        }
        const state = {received: [], client: null};
        window.playhouseNotices = state;
        let openedAt = 0;
        state.client = new window.WS4Redis({
            uri: URI,
            heartbeat_msg: document.body.dataset.heartbeat || null,
            connected: () => { openedAt = Date.now(); },
            receive_message: (msg) => {
                state.received.push(msg);
                const notice = parse(msg);
                if (Date.now() - openedAt < REPLAY_WINDOW_MS && seen.has(notice.key)) {
                    return;  // the kept last message, already shown in this tab
                }
                seen.add(notice.key);
                show(container, notice);
            },
        });
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', init);
    } else {
        init();
    }
}());
