/**
 * ws4redis.js — dependency-free browser client for Playhouse.
 *
 * Drop-in replacement for the jQuery-based `ws4redis.js` shipped with
 * django-websocket-redis 0.6.0: same options, same `send_message()` method,
 * plus `close()`, a bounded send queue and a jittered reconnect back-off.
 *
 *     const ws = new WS4Redis({
 *         uri: '/ws/notifications?subscribe-broadcast',
 *         heartbeat_msg: '--heartbeat--',
 *         connecting: () => {},
 *         connected: () => {},
 *         receive_message: (msg) => console.log(msg),
 *         disconnected: (evt) => {},
 *     });
 *     ws.send_message('hello');
 *     ws.close();
 *
 * Plain ES2017 script, no build step. Defines `window.WS4Redis`; also exported
 * via CommonJS (`module.exports`) or AMD when those are present.
 */
(function (root, factory) {
    'use strict';
    const WS4Redis = factory(root);
    if (typeof module === 'object' && module && module.exports) {
        module.exports = WS4Redis;
        module.exports.WS4Redis = WS4Redis;
    } else if (typeof define === 'function' && define.amd) { // eslint-disable-line no-undef
        define([], () => WS4Redis); // eslint-disable-line no-undef
    }
    if (root) {
        root.WS4Redis = WS4Redis;
    }
}(typeof window !== 'undefined' ? window : (typeof globalThis !== 'undefined' ? globalThis : this), function (root) {
    'use strict';

    /** Interval between heartbeats, in ms (same as the original client). */
    const HEARTBEAT_INTERVAL_MS = 5000;
    /** Close and reconnect once this many heartbeats went unanswered. */
    const MAX_MISSED_HEARTBEATS = 3;
    /** Reconnect back-off: base delay and cap, in ms. */
    const BACKOFF_BASE_MS = 500;
    const BACKOFF_CAP_MS = 30000;
    /** A connection that stays open this long resets the back-off counter. */
    const STABLE_AFTER_MS = 10000;
    /** Maximum number of messages queued while the socket is not open. */
    const MAX_QUEUE = 100;

    // WebSocket readyState values (not relying on the global, for tests).
    const CONNECTING = 0;
    const OPEN = 1;
    const CLOSING = 2;
    const CLOSED = 3;

    /** Custom close code used when we drop a connection for missed heartbeats. */
    const HEARTBEAT_CLOSE_CODE = 4000;

    /**
     * Turn `uri` into an absolute ws:// or wss:// URL.
     * Absolute ws(s):// URLs are used as is; http(s):// URLs are mapped to
     * ws(s)://; anything else (e.g. "/ws/foo?subscribe-broadcast") is resolved
     * against the page location, using wss: when the page is served over https:.
     * @param {string} uri
     * @returns {string}
     * @private
     */
    function resolveUri(uri) {
        if (/^wss?:\/\//i.test(uri)) {
            return uri;
        }
        if (/^https?:\/\//i.test(uri)) {
            return uri.replace(/^http/i, 'ws');
        }
        const loc = root && root.location;
        if (!loc || !loc.host) {
            throw new Error('WS4Redis: relative uri "' + uri + '" needs a page location');
        }
        const url = new URL(uri, loc.href);
        url.protocol = loc.protocol === 'https:' ? 'wss:' : 'ws:';
        return url.href;
    }

    /**
     * Full-jitter exponential back-off: a random delay in
     * [0, min(cap, base * 2^attempt)).
     * @param {number} attempt zero-based number of consecutive failed attempts
     * @returns {number} delay in ms
     * @private
     */
    function backoffDelay(attempt) {
        const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * Math.pow(2, Math.min(attempt, 30)));
        return Math.floor(Math.random() * ceiling);
    }

    /**
     * Build a close-event-like object for connections we tear down ourselves.
     * @private
     */
    function syntheticCloseEvent(code, reason) {
        const init = {code: code, reason: reason, wasClean: false};
        if (typeof root.CloseEvent === 'function') {
            try {
                return new root.CloseEvent('close', init);
            } catch (e) { /* fall through */ }
        }
        return Object.assign({type: 'close'}, init);
    }

    /**
     * Invoke an optional user callback, isolating the client from its errors.
     * @private
     */
    function callback(fn, args) {
        if (typeof fn !== 'function') {
            return undefined;
        }
        try {
            return fn.apply(null, args || []);
        } catch (err) {
            if (typeof console !== 'undefined') {
                console.error('WS4Redis: callback threw', err);
            }
            return undefined;
        }
    }

    /**
     * @typedef {Object} WS4RedisOptions
     * @property {string} uri  WebSocket URL. Either absolute (`ws://host/ws/foo`,
     *     `wss://…`) or a path (`/ws/foo?subscribe-broadcast`), which is
     *     resolved against the page's host using `ws:` or `wss:` to match the
     *     page's protocol.
     * @property {?string} [heartbeat_msg=null]  When set, this string is sent
     *     every 5 s. A received message equal to it counts as a heartbeat
     *     reply and is NOT passed to `receive_message`. After 3 unanswered
     *     heartbeats the connection is dropped and re-established.
     * @property {function():void} [connecting]  Called before every connection
     *     attempt (initial and reconnects).
     * @property {function():void} [connected]  Called with no arguments when a
     *     connection opens.
     * @property {function(string):void} [receive_message]  Called with the raw
     *     message data (a string for text frames) for every non-heartbeat message.
     * @property {function(CloseEvent):void} [disconnected]  Called with the
     *     close event whenever an open or opening connection closes (also after
     *     `close()`). For heartbeat timeouts a synthetic event with code 4000 is
     *     passed.
     */

    /**
     * WebSocket client compatible with django-websocket-redis' `WS4Redis`.
     *
     * Reconnect policy: after any close not requested via `close()`, the
     * client reconnects after a full-jitter exponential back-off delay,
     * random in [0, min(30 s, 500 ms * 2^n)), where n is the number of
     * consecutive reconnect attempts so far. n is reset to 0 only once a
     * connection has stayed open for 10 s — resetting on `open` alone would
     * let a server that accepts and immediately drops connections cause a
     * tight reconnect loop.
     *
     * Like the original, it may be called with or without `new`.
     *
     * @constructor
     * @param {WS4RedisOptions} options
     */
    function WS4Redis(options) {
        if (!(this instanceof WS4Redis)) {
            return new WS4Redis(options);
        }
        if (!options || typeof options.uri !== 'string' || options.uri === '') {
            throw new Error('No Websocket URI in options');
        }
        const opts = Object.assign({heartbeat_msg: null}, options);
        const heartbeatMsg = (typeof opts.heartbeat_msg === 'string' && opts.heartbeat_msg !== '')
            ? opts.heartbeat_msg : null;
        const url = resolveUri(opts.uri);

        let ws = null;                // current WebSocket, or null
        let closedByUser = false;     // close() was called
        let attempts = 0;             // consecutive reconnect attempts
        let reconnectTimer = null;
        let stableTimer = null;
        let heartbeatTimer = null;
        let missedHeartbeats = 0;
        const queue = [];

        function clearTimers() {
            if (heartbeatTimer !== null) { clearInterval(heartbeatTimer); heartbeatTimer = null; }
            if (stableTimer !== null) { clearTimeout(stableTimer); stableTimer = null; }
        }

        function detach(sock) {
            sock.onopen = sock.onmessage = sock.onerror = sock.onclose = null;
        }

        function connect() {
            reconnectTimer = null;
            if (closedByUser) {
                return;
            }
            callback(opts.connecting);
            if (closedByUser) {   // connecting() may have called close()
                return;
            }
            let sock;
            try {
                const Ctor = root.WebSocket;
                sock = new Ctor(url);
            } catch (err) {
                if (typeof console !== 'undefined') {
                    console.error('WS4Redis: cannot create WebSocket', err);
                }
                scheduleReconnect();
                return;
            }
            ws = sock;
            sock.onopen = () => onOpen(sock);
            sock.onmessage = (evt) => onMessage(sock, evt);
            sock.onerror = () => { /* a close event always follows */ };
            sock.onclose = (evt) => onClose(sock, evt);
        }

        function onOpen(sock) {
            if (sock !== ws) {
                return;
            }
            missedHeartbeats = 0;
            stableTimer = setTimeout(() => {
                stableTimer = null;
                attempts = 0;
            }, STABLE_AFTER_MS);
            if (heartbeatMsg !== null) {
                heartbeatTimer = setInterval(sendHeartbeat, HEARTBEAT_INTERVAL_MS);
            }
            // Flush before connected() so queued messages keep their order
            // relative to anything connected() sends.
            while (queue.length && ws === sock && sock.readyState === OPEN) {
                sock.send(queue.shift());
            }
            callback(opts.connected);
        }

        function onMessage(sock, evt) {
            if (sock !== ws) {
                return;
            }
            if (heartbeatMsg !== null && evt.data === heartbeatMsg) {
                missedHeartbeats = 0;
                return;
            }
            callback(opts.receive_message, [evt.data]);
        }

        function onClose(sock, evt) {
            if (sock !== ws) {
                return;
            }
            detach(sock);
            ws = null;
            clearTimers();
            callback(opts.disconnected, [evt]);
            scheduleReconnect();
        }

        function scheduleReconnect() {
            if (closedByUser || reconnectTimer !== null) {
                return;
            }
            const delay = backoffDelay(attempts);
            attempts += 1;
            reconnectTimer = setTimeout(connect, delay);
        }

        function sendHeartbeat() {
            const sock = ws;
            if (!sock || sock.readyState !== OPEN) {
                return;
            }
            if (missedHeartbeats >= MAX_MISSED_HEARTBEATS) {
                // Don't wait for a close handshake on a dead link: drop the
                // socket now and treat it as closed.
                detach(sock);
                try {
                    sock.close(HEARTBEAT_CLOSE_CODE, 'heartbeat timeout');
                } catch (e) { /* ignore */ }
                onClose(sock, syntheticCloseEvent(HEARTBEAT_CLOSE_CODE, 'heartbeat timeout'));
                return;
            }
            missedHeartbeats += 1;
            sock.send(heartbeatMsg);
        }

        /**
         * Send a message. If the socket is not open yet (or is reconnecting),
         * the message is queued — at most 100 messages; when full the oldest
         * queued message is discarded — and flushed in order on the next open.
         * @param {string|ArrayBuffer|Blob|ArrayBufferView} message
         * @returns {boolean} true if sent or queued, false if the client was
         *     closed with `close()` (the message is dropped).
         */
        this.send_message = function (message) {
            if (closedByUser) {
                return false;
            }
            if (ws && ws.readyState === OPEN) {
                ws.send(message);
                return true;
            }
            if (queue.length >= MAX_QUEUE) {
                queue.shift();
            }
            queue.push(message);
            return true;
        };

        /**
         * Close the connection for good: no further reconnects, queued
         * messages are discarded. `disconnected` still fires once if a socket
         * was open or opening. Idempotent.
         * @param {number} [code=1000] WebSocket close code
         * @param {string} [reason]
         */
        this.close = function (code, reason) {
            if (closedByUser) {
                return;
            }
            closedByUser = true;
            queue.length = 0;
            if (reconnectTimer !== null) {
                clearTimeout(reconnectTimer);
                reconnectTimer = null;
            }
            clearTimers();
            if (ws && ws.readyState !== CLOSING && ws.readyState !== CLOSED) {
                try {
                    ws.close(code === undefined ? 1000 : code, reason);
                } catch (e) {
                    ws.close();
                }
            }
        };

        /**
         * Alias of the `readyState` getter, as in the original client.
         * @returns {number}
         */
        this.get_state = function () {
            return ws ? ws.readyState : CLOSED;
        };

        Object.defineProperties(this, {
            /**
             * readyState of the current socket (0–3, as `WebSocket`); CLOSED (3)
             * while waiting to reconnect or after `close()`.
             * @type {number}
             */
            readyState: {get: () => (ws ? ws.readyState : CLOSED), enumerable: true},
            /**
             * Consecutive reconnect attempts since the last stable (10 s)
             * connection; 0 initially.
             * @type {number}
             */
            reconnectAttempts: {get: () => attempts, enumerable: true},
            /** Resolved absolute WebSocket URL. @type {string} */
            url: {get: () => url, enumerable: true},
        });

        connect();
    }

    WS4Redis.CONNECTING = CONNECTING;
    WS4Redis.OPEN = OPEN;
    WS4Redis.CLOSING = CLOSING;
    WS4Redis.CLOSED = CLOSED;

    return WS4Redis;
}));
