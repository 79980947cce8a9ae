/*
 * Playhouse game page: the game socket (resume, moves, chat, draw offers), the page
 * chrome (turn, players and clocks, move list, chat, result) and the board, drawn by
 * the module static/boards/<kind>.js registered in window.PlayhouseBoards[kind].
 *
 * Protocol: docs/protocol.md, "The game socket". On every (re)open the page sends
 * {"type":"resume","since":lastSeq,"chat_since":lastChat}; a `state` is shown only
 * when its seq is newer than the last one shown, a chat line only when its n is.
 * When the socket cannot be opened (a failed attempt before it ever connected, a
 * 1008 close, or three failed attempts in a row), the page asks GET /api/me and
 * GET /api/games/<id> why: signed out, not a player or no such game stops the socket
 * and says so in #game-error; anything else keeps reconnecting.
 *
 * Spectator mode (data-spectator="yes": a signed-in user who does not play): the
 * socket is /ws/<id>?subscribe-broadcast (public states only), the board is
 * read-only, no resign/draw/chat/rematch controls, a "Watching" banner. Everyone
 * sees "N watching" under the players from the `watchers` messages.
 *
 * Loaded with `defer` after ws4redis.js and the board module. No inline script,
 * no innerHTML: every text from the server goes in through textContent.
 */
(function () {
    'use strict';

    const SVG_NS = 'http://www.w3.org/2000/svg';
    const MAX_CHAT = 500;
    const EVENT_TEXT = {
        resign: 'resigned',
        offer_draw: 'offered a draw',
        accept_draw: 'accepted the draw',
        decline_draw: 'declined the draw',
        timeout: 'ran out of time',
        abandon: 'left the game',
    };
    const REASONS = {
        resigned: 'by resignation',
        agreed: 'by agreement',
        timeout: 'on time',
        abandoned: 'by abandonment',
    };

    /* ---- Helpers the board modules share (window.PlayhouseUI) ---- */

    /** An SVG element with attributes (attribute values, never markup). */
    function svg(tag, attrs, parent) {
        const el = document.createElementNS(SVG_NS, tag);
        for (const [name, value] of Object.entries(attrs || {})) {
            if (value !== null && value !== undefined) {
                el.setAttribute(name, String(value));
            }
        }
        if (parent) {
            parent.appendChild(el);
        }
        return el;
    }

    /** An HTML element with a class and text. */
    function html(tag, className, text, parent) {
        const el = document.createElement(tag);
        if (className) {
            el.className = className;
        }
        if (text !== undefined && text !== null) {
            el.textContent = String(text);
        }
        if (parent) {
            parent.appendChild(el);
        }
        return el;
    }

    /**
     * Make `el` a keyboard-operable button: focusable, labelled, activated by click,
     * Enter or Space. `focusKey` lets the page restore focus after a re-render;
     * `x`/`y` place it for arrow-key navigation (see bindArrows).
     */
    function actionable(el, opts) {
        el.setAttribute('tabindex', '0');
        el.setAttribute('role', 'button');
        el.setAttribute('aria-label', opts.label);
        el.dataset.focusKey = opts.key;
        if (opts.x !== undefined) {
            el.dataset.navX = String(opts.x);
            el.dataset.navY = String(opts.y);
        }
        const enabled = opts.enabled !== false;
        el.setAttribute('aria-disabled', enabled ? 'false' : 'true');
        el.classList.add('hit', enabled ? 'hit-enabled' : 'hit-disabled');
        const activate = (evt) => {
            evt.preventDefault();
            if (enabled && opts.onActivate) {
                opts.onActivate();
            }
        };
        el.addEventListener('click', activate);
        el.addEventListener('keydown', (evt) => {
            if (evt.key === 'Enter' || evt.key === ' ' || evt.key === 'Spacebar') {
                activate(evt);
            }
        });
        return el;
    }

    /** Arrow keys move focus to the nearest [data-nav-x] element in that direction. */
    function bindArrows(container) {
        if (container.dataset.arrowsBound) {
            return;
        }
        container.dataset.arrowsBound = 'yes';
        container.addEventListener('keydown', (evt) => {
            const dirs = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
            const dir = dirs[evt.key];
            const from = document.activeElement;
            if (!dir || !from || !container.contains(from) || from.dataset.navX === undefined) {
                return;
            }
            const x0 = Number(from.dataset.navX);
            const y0 = Number(from.dataset.navY);
            let best = null;
            let bestScore = Infinity;
            for (const el of container.querySelectorAll('[data-nav-x]')) {
                const dx = Number(el.dataset.navX) - x0;
                const dy = Number(el.dataset.navY) - y0;
                const along = dx * dir[0] + dy * dir[1];
                if (el === from || along <= 0) {
                    continue;
                }
                const across = Math.abs(dx * dir[1]) + Math.abs(dy * dir[0]);
                const score = along + across * 2.5;
                if (score < bestScore) {
                    bestScore = score;
                    best = el;
                }
            }
            if (best) {
                evt.preventDefault();
                best.focus();
            }
        });
    }

    /** Seat marks: colour and shape both tell the players apart. */
    const SEATS = [
        {color: 'var(--seat0)', fill: '#5b3fd6', pale: '#e4dcff', symbol: '✕', shape: 'cross'},
        {color: 'var(--seat1)', fill: '#c2410c', pale: '#ffe3d3', symbol: '◯', shape: 'ring'},
    ];

    /** mm:ss for a number of milliseconds (never negative). */
    function clockText(ms) {
        const total = Math.max(0, Math.ceil(ms / 1000));
        const m = Math.floor(total / 60);
        const s = total % 60;
        return m + ':' + String(s).padStart(2, '0');
    }

    /**
     * "alice resigned", or for a move "alice " + what ``describeMove()`` says (the board's
     * wording; it may be null or throw: the raw move is shown then).
     */
    function eventText(last, describeMove) {
        const who = last.player || '';
        if (last.type !== 'move') {
            return who + ' ' + (EVENT_TEXT[last.type] || last.type);
        }
        let text = null;
        if (describeMove) {
            try {
                text = describeMove();
            } catch (e) {
                text = null;
            }
        }
        return who + ' ' + (text || (last.move ? JSON.stringify(last.move) : 'moved'));
    }

    /** "alice wins — by resignation." ("You win …!" for ``me``), "Draw …", or '' for none. */
    function resultText(result, me) {
        if (!result) {
            return '';
        }
        const reason = REASONS[result.reason] || result.reason || '';
        const how = reason ? ' — ' + reason : '';
        if (result.status === 'draw' || !result.winner) {
            return 'Draw' + how + '.';
        }
        if (me && result.winner === me) {
            return 'You win' + how + '!';
        }
        return result.winner + ' wins' + how + '.';
    }

    window.PlayhouseUI = {svg, html, actionable, bindArrows, SEATS, clockText, eventText, resultText};
    window.PlayhouseBoards = window.PlayhouseBoards || {};

    /* ---- The page ---- */

    function init() {
        const root = document.getElementById('game');
        if (!root) {
            return;
        }
        const gameId = root.dataset.gameId;
        const kind = root.dataset.kind;
        const me = root.dataset.me;
        const spectator = root.dataset.spectator === 'yes';
        const boardData = JSON.parse(root.dataset.board || '{}');
        const initialPlayers = JSON.parse(root.dataset.players || '[]');
        const board = window.PlayhouseBoards[kind] || null;
        const reducedMotion = window.matchMedia &&
            window.matchMedia('(prefers-reduced-motion: reduce)').matches;

        const $ = (id) => document.getElementById(id);
        const els = {
            connection: $('connection'), turn: $('turn'), error: $('game-error'),
            board: $('board'), players: $('players'), moves: $('moves'), moveCount: $('move-count'),
            chatLog: $('chat-log'), chatForm: $('chat-form'), chatText: $('chat-text'),
            chatSend: $('chat-send'), offerDraw: $('offer-draw'), resign: $('resign'),
            resignConfirm: $('resign-confirm'), resignYes: $('resign-yes'), resignNo: $('resign-no'),
            drawOffer: $('draw-offer'), drawText: $('draw-offer-text'),
            drawAccept: $('draw-accept'), drawDecline: $('draw-decline'),
            result: $('game-result'), resultText: $('result-text'),
            rematch: $('rematch'), rematchStatus: $('rematch-status'), rematchOffer: $('rematch-offer'),
            rematchText: $('rematch-offer-text'), rematchAccept: $('rematch-accept'),
            rematchDecline: $('rematch-decline'),
            watchers: $('watchers'), actions: $('game-actions'), chatPanel: $('chat-panel'),
        };

        const game = {
            state: null,          // the last state shown
            received: [],         // every parsed message, in order (for tests)
            lastSeq: 0,
            lastChat: 0,
            moves: new Map(),     // seq -> text, from each state's `last`
            chat: [],
            connected: false,
            everConnected: false,
            resumed: false,       // the server answered this connection's resume
            stopped: null,        // why the page gave up on the socket: 'signed_out', ...
            pending: new Map(),   // client message id -> what it was
            clock: null,          // {remaining_ms, running, deadline_ms, at}
            away: {},             // player -> {ms, at}
            watchers: 0,          // how many watch (the last `watchers` message)
            spectator: spectator,
            client: null,
        };
        window.playhouseGame = game;
        let nextId = 1;
        let moveInFlight = false;
        let errorTimer = null;

        /* -- Errors -- */

        function showError(message, {autoClear = 8000} = {}) {
            els.error.textContent = message;
            els.error.classList.add('game-error-shown');
            if (errorTimer !== null) {
                clearTimeout(errorTimer);
            }
            errorTimer = autoClear ? setTimeout(clearError, autoClear) : null;
        }

        function clearError() {
            els.error.textContent = '';
            els.error.classList.remove('game-error-shown');
            errorTimer = null;
        }

        /* -- Sending -- */

        /** Send one client message on the socket; the answer comes as ack/error. */
        function send(message) {
            if (spectator && message.type !== 'resume') {
                return null; // read-only: the server would refuse it anyway
            }
            const id = nextId++;
            const full = Object.assign({}, message, {id: id});
            game.pending.set(id, full);
            game.client.send_message(JSON.stringify(full));
            return id;
        }

        function sendMove(move) {
            if (spectator || moveInFlight || game.stopped || !game.state || game.state.status === 'finished') {
                return;
            }
            clearError();
            moveInFlight = true;
            renderAll();
            send({type: 'move', seq: game.lastSeq, move: move});
        }

        function resign() {
            hideResignConfirm();
            send({type: 'resign'});
        }

        /* -- Receiving -- */

        function onMessage(raw) {
            let msg;
            try {
                msg = JSON.parse(raw);
            } catch (e) {
                return; // not ours (plain text notices live on another socket)
            }
            if (!msg || typeof msg !== 'object') {
                return;
            }
            game.received.push(msg);
            switch (msg.type) {
            case 'state': onState(msg); break;
            case 'chat': onChat(msg); break;
            case 'resumed': onResumed(msg); break;
            case 'ack': onAck(msg); break;
            case 'error': onError(msg); break;
            case 'player': onPlayer(msg); break;
            case 'watchers': onWatchers(msg); break;
            case 'rematch_offer': onRematchOffer(msg.challenge); break;
            case 'rematch_update': onRematchUpdate(msg.challenge); break;
            case 'rematch': goToGame(msg.url); break;
            default: break;
            }
        }

        function noteMove(state) {
            const seq = state.seq;
            if (!state.last || !seq || game.moves.has(seq)) {
                return;
            }
            game.moves.set(seq, describeLast(state));
        }

        function onState(state) {
            if (typeof state.seq !== 'number') {
                return;
            }
            noteMove(state);
            if (!state.replay && game.resumed && game.state !== null && state.seq > game.lastSeq + 1) {
                // A live state went missing (the broker was down as it was sent): the
                // position below is complete, the move list is not; fetch what was skipped.
                send({type: 'resume', since: game.lastSeq, chat_since: game.lastChat});
            }
            const fresh = state.seq > game.lastSeq || (game.state === null && state.seq === game.lastSeq);
            if (!fresh) {
                renderMoves();
                return;
            }
            const previous = game.state;
            game.state = state;
            game.lastSeq = state.seq;
            if (state.clock) {
                game.clock = Object.assign({at: performance.now()}, state.clock);
            } else if (state.clock === null && !state.replay) {
                game.clock = null;
            }
            if (state.away && typeof state.away === 'object') {
                game.away = {};
                for (const [name, ms] of Object.entries(state.away)) {
                    game.away[name] = {ms: typeof ms === 'number' ? ms : null, at: performance.now()};
                }
            }
            if (!previous || previous.seq !== state.seq) {
                moveInFlight = false;
            }
            renderAll({animate: !state.replay && previous !== null && !reducedMotion});
        }

        function onChat(msg) {
            if (typeof msg.n !== 'number' || msg.n <= game.lastChat) {
                return;
            }
            game.lastChat = msg.n;
            game.chat.push(msg);
            const li = html('li', 'chat-line' + (msg.from === me ? ' chat-mine' : ''));
            html('b', 'chat-from', msg.from, li);
            html('span', 'chat-text', msg.text, li);
            els.chatLog.appendChild(li);
            els.chatLog.scrollTop = els.chatLog.scrollHeight;
        }

        function onResumed(msg) {
            game.resumed = true;
            if (typeof msg.seq === 'number' && game.state && msg.seq > game.lastSeq) {
                // The server is ahead of anything replayed: should not happen; ask again.
                send({type: 'resume', since: game.lastSeq, chat_since: game.lastChat});
            }
            renderAll();
        }

        function onAck(msg) {
            const sent = game.pending.get(msg.id);
            game.pending.delete(msg.id);
            if (sent && sent.type === 'chat') {
                els.chatText.value = '';
            }
            if (sent && sent.type === 'move') {
                if (typeof msg.seq === 'number' && msg.seq <= game.lastSeq) {
                    moveInFlight = false;
                } else {
                    // The state follows the ack on the channel; don't wait for it forever.
                    setTimeout(() => {
                        if (moveInFlight) {
                            moveInFlight = false;
                            renderAll();
                        }
                    }, 4000);
                }
            }
            renderAll();
        }

        function onError(msg) {
            const sent = game.pending.get(msg.id);
            game.pending.delete(msg.id);
            if (!sent || sent.type === 'move') {
                moveInFlight = false;
            }
            handleError(msg);
            renderAll();
        }

        function handleError(msg) {
            if (msg.code === 'stale' && msg.current) {
                showError('The game moved on before your move arrived — here is the current position.',
                    {autoClear: 5000});
                onState(Object.assign({}, msg.current, {replay: true}));
                return;
            }
            showError(msg.message || msg.code || 'Something went wrong.');
        }

        function onPlayer(msg) {
            if (!msg.player) {
                return;
            }
            if (msg.connected) {
                delete game.away[msg.player];
            } else {
                const ms = typeof msg.forfeit_in_ms === 'number' ? msg.forfeit_in_ms : null;
                game.away[msg.player] = {ms: ms, at: performance.now()};
            }
            renderPlayers();
        }

        function onWatchers(msg) {
            if (typeof msg.count !== 'number' || (msg.game_id && msg.game_id !== gameId)) {
                return;
            }
            game.watchers = Math.max(0, msg.count);
            renderWatchers();
        }

        /* -- What the state means -- */

        function players() {
            const s = game.state;
            if (s && Array.isArray(s.players)) {
                return s.players;
            }
            if (s && s.view && Array.isArray(s.view.players)) {
                return s.view.players;
            }
            return initialPlayers;
        }

        function toMove() {
            const s = game.state;
            if (!s || s.status === 'finished') {
                return [];
            }
            if (Array.isArray(s.to_move)) {
                return s.to_move;
            }
            const v = s.view || {};
            const names = players();
            if (Array.isArray(v.chosen)) {
                return names.filter((_, i) => !v.chosen[i]);
            }
            if (typeof v.turn === 'number') {
                return [names[v.turn]];
            }
            return [];
        }

        function finished() {
            return !!game.state && game.state.status === 'finished';
        }

        /** It is my turn (a move of mine may be on its way). */
        function myTurnNow() {
            return !finished() && !game.stopped && toMove().includes(me);
        }

        function myTurn() {
            return !finished() && !moveInFlight && !game.stopped && toMove().includes(me);
        }

        function describeLast(state) {
            const last = state.last;
            const describeMove = board && board.describe
                ? () => board.describe(last, state, context(state)) : null;
            return eventText(last, describeMove);
        }

        function context(state) {
            const names = players();
            return {
                me: me,
                players: names,
                seat: names.indexOf(me),
                myTurn: myTurn(),
                finished: finished(),
                state: state,
                last: state ? state.last : null,
                boardData: boardData,
                ui: window.PlayhouseUI,
                send: spectator ? () => {} : sendMove,
                spectator: spectator,
                animate: false,
            };
        }

        /* -- Rendering -- */

        function renderAll(opts) {
            renderConnection();
            renderTurn();
            renderBoard(opts || {});
            renderPlayers();
            renderWatchers();
            renderMoves();
            renderControls();
        }

        function renderWatchers() {
            const n = game.watchers;
            els.watchers.hidden = n <= 0;
            els.watchers.textContent = n > 0 ? n + ' watching' : '';
        }

        function renderConnection() {
            const el = els.connection;
            let text;
            let cls;
            if (game.stopped) {
                text = game.stopped === 'signed_out' ? 'signed out' : 'closed';
                cls = 'disconnected';
            } else if (game.connected) {
                text = 'live';
                cls = 'connected';
            } else {
                text = game.everConnected ? 'reconnecting…' : 'connecting…';
                cls = game.everConnected ? 'disconnected' : 'connecting';
            }
            el.textContent = text;
            el.className = 'status status-' + cls;
        }

        const baseTitle = document.title;

        function renderTurn() {
            const el = els.turn;
            const s = game.state;
            document.title = (s && myTurnNow() ? '● Your turn · ' : '') + baseTitle;
            el.classList.remove('turn-mine', 'turn-over');
            if (s && finished()) {
                el.textContent = resultText(s.result, me) || 'Game over.';
                el.classList.add('turn-over');
                return;
            }
            if (game.stopped) {
                el.textContent = 'This game is not live on this page.';
                return;
            }
            if (!s) {
                el.textContent = 'Loading the game…';
                return;
            }
            const waiting = toMove().filter((p) => p !== me);
            if (toMove().includes(me)) {
                el.textContent = moveInFlight ? 'Sending your move…' : 'Your turn';
                el.classList.add('turn-mine');
            } else if (waiting.length && spectator) {
                el.textContent = waiting.join(' and ') + ' to move';
            } else if (waiting.length) {
                el.textContent = 'Waiting for ' + waiting.join(' and ') + '…';
            } else {
                el.textContent = 'Waiting…';
            }
        }

        function renderBoard(opts) {
            const container = els.board;
            if (!game.state) {
                return;
            }
            if (!board) {
                container.textContent = 'This game cannot be shown yet.';
                return;
            }
            const active = document.activeElement;
            const focusKey = active && container.contains(active) ? active.dataset.focusKey : null;
            const ctx = context(game.state);
            ctx.animate = !!opts.animate;
            board.render(container, game.state.view || {}, ctx);
            bindArrows(container);
            if (focusKey) {
                const again = container.querySelector('[data-focus-key="' + CSS.escape(focusKey) + '"]');
                if (again) {
                    again.focus();
                }
            }
        }

        function awayMs(name) {
            const entry = game.away[name];
            if (!entry) {
                return undefined;
            }
            if (entry.ms === null) {
                return null;
            }
            return entry.ms - (performance.now() - entry.at);
        }

        function renderPlayers() {
            const names = players();
            const s = game.state;
            const moving = toMove();
            const clock = game.clock;
            const elapsed = clock ? performance.now() - clock.at : 0;
            const summaries = s && board && board.playerInfo ? board.playerInfo(s.view || {}, context(s)) : null;
            els.players.textContent = '';
            names.forEach((name, seat) => {
                const li = html('li', 'player', null, els.players);
                li.dataset.player = name;
                li.classList.toggle('player-moving', moving.includes(name));
                const mark = SEATS[seat] || SEATS[0];
                const badge = html('span', 'player-mark player-mark-' + seat, mark.symbol, li);
                badge.setAttribute('aria-hidden', 'true');
                const who = html('span', 'player-name', name, li);
                if (name === me) {
                    html('span', 'player-you', ' (you)', who);
                }
                if (moving.includes(name)) {
                    html('span', 'player-to-move', 'to move', who);
                }
                if (summaries && summaries[seat]) {
                    html('span', 'player-info', summaries[seat], li);
                }
                if (clock && clock.remaining_ms && typeof clock.remaining_ms[name] === 'number') {
                    const running = Array.isArray(clock.running) && clock.running.includes(name);
                    const left = clock.remaining_ms[name] - (running ? elapsed : 0);
                    const time = html('span', 'clock' + (running ? ' clock-running' : ''), clockText(left), li);
                    time.setAttribute('aria-label', 'Time left ' + clockText(left));
                    time.classList.toggle('clock-low', left < 30000);
                    if (running && typeof clock.deadline_ms === 'number') {
                        const left2 = clock.deadline_ms - elapsed;
                        const deadline = html('span', 'deadline', 'move within ' + clockText(left2), li);
                        deadline.classList.toggle('clock-low', left2 < 10000);
                    }
                }
                const away = awayMs(name);
                if (away !== undefined) {
                    const text = away === null ? 'disconnected'
                        : 'disconnected — forfeits in ' + Math.max(0, Math.ceil(away / 1000)) + 's';
                    html('span', 'player-away', text, li);
                }
            });
        }

        function renderMoves() {
            const seqs = [...game.moves.keys()].sort((a, b) => a - b);
            const list = els.moves;
            if (list.children.length === seqs.length &&
                    (seqs.length === 0 || list.lastElementChild.dataset.seq === String(seqs[seqs.length - 1]))) {
                return;
            }
            list.textContent = '';
            for (const seq of seqs) {
                const li = html('li', 'move', game.moves.get(seq), list);
                li.dataset.seq = String(seq);
                li.value = seq;
            }
            els.moveCount.textContent = seqs.length ? '(' + seqs.length + ')' : '';
            list.scrollTop = list.scrollHeight;
        }

        function renderControls() {
            const s = game.state;
            const over = !s || finished() || game.stopped !== null;
            els.resign.disabled = over;
            els.resignYes.disabled = over;
            if (over) {
                hideResignConfirm(false);
            }
            const offer = s ? s.draw_offer || null : null;
            els.offerDraw.disabled = over || offer !== null;
            els.offerDraw.textContent = offer === me ? 'Draw offered' : 'Offer draw';
            const theirs = !spectator && !over && offer !== null && offer !== me;
            els.drawOffer.hidden = !theirs;
            if (theirs) {
                els.drawText.textContent = offer + ' offers a draw.';
            }
            els.chatText.disabled = game.stopped !== null;
            els.chatSend.disabled = game.stopped !== null || !game.connected;
            els.result.hidden = !(s && finished());
            if (s && finished()) {
                els.resultText.textContent = resultText(s.result, me);
                if (!spectator) {
                    loadRematch();
                }
            }
            if (spectator) {
                renderSpectator();
                return;
            }
            renderRematch();
        }

        /** Read-only: no way to move, resign, offer a draw, chat or ask for a rematch. */
        function renderSpectator() {
            for (const el of [els.resign, els.resignYes, els.offerDraw, els.drawAccept, els.drawDecline,
                els.chatText, els.chatSend, els.rematch]) {
                el.disabled = true;
            }
            els.actions.hidden = true;
            els.chatPanel.hidden = true;
            els.drawOffer.hidden = true;
            els.rematch.hidden = true;
            els.rematchOffer.hidden = true;
        }

        /* -- Rematch: a challenge with the seats swapped, offered from the result -- */

        const rematch = {
            incoming: null,   // the opponent's pending offer (a challenge)
            outgoing: null,   // mine
            busy: false,      // a request is on its way
            loaded: false,    // pending offers asked for once the game is over
            note: '',
        };
        game.rematch = rematch;

        function xsrfToken() {
            const match = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
            return match ? decodeURIComponent(match[1]) : null;
        }

        async function postJson(path) {
            let token = xsrfToken();
            if (token === null) {  // no form on the page set it: ask for one
                token = (await getJson('/api/xsrf')).data.xsrf;
            }
            const reply = await fetch(path, {
                method: 'POST',
                credentials: 'same-origin',
                headers: {'Content-Type': 'application/json', 'X-XSRFToken': token},
                body: '{}',
            });
            let data = null;
            try {
                data = await reply.json();
            } catch (e) { /* empty or not JSON */ }
            return {ok: reply.ok, status: reply.status, data: data || {}};
        }

        let leaving = false;  // the accept answer and the `rematch` message both say go

        function goToGame(url) {
            if (!leaving && typeof url === 'string' && /^\/game\/[A-Za-z0-9_-]+$/.test(url)) {
                leaving = true;
                window.location.assign(url);
            }
        }

        function isOurs(c) {
            return c && typeof c === 'object' && c.rematch_of === gameId && c.status === 'pending';
        }

        function onRematchOffer(c) {
            if (!isOurs(c)) {
                return;
            }
            if (c.to === me) {
                rematch.incoming = c;
            } else if (c.from === me) {
                rematch.outgoing = c;
            }
            rematch.note = '';
            renderRematch();
        }

        const SETTLED = {declined: 'declined', cancelled: 'was withdrawn', expired: 'expired'};

        function onRematchUpdate(c) {
            if (!c || typeof c !== 'object') {
                return;
            }
            if (rematch.incoming && rematch.incoming.id === c.id) {
                rematch.incoming = null;
            }
            if (rematch.outgoing && rematch.outgoing.id === c.id) {
                rematch.outgoing = null;
                if (SETTLED[c.status]) {
                    rematch.note = 'Your rematch offer ' + SETTLED[c.status] + '.';
                }
            }
            renderRematch();
        }

        /** Once the game is over: any rematch offer made before this page was open. */
        async function loadRematch() {
            if (rematch.loaded) {
                return;
            }
            rematch.loaded = true;
            try {
                const lobby = await getJson('/api/lobby');
                const open = lobby.ok && lobby.data.challenges ? lobby.data.challenges : {};
                (open.incoming || []).concat(open.outgoing || []).forEach(onRematchOffer);
            } catch (e) { /* offers still arrive on the socket */ }
        }

        async function offerRematch() {
            if (rematch.busy) {
                return;
            }
            rematch.busy = true;
            clearError();
            renderRematch();
            try {
                const reply = await postJson('/api/games/' + encodeURIComponent(gameId) + '/rematch');
                if (reply.ok) {
                    onRematchOffer(reply.data);
                } else if (reply.data.error === 'challenge_pending' && isOurs(reply.data.challenge)) {
                    onRematchOffer(reply.data.challenge);  // the opponent offered first
                } else {
                    showError(reply.data.message || 'The rematch could not be offered.');
                }
            } catch (e) {
                showError('The server is unreachable; try again.');
            } finally {
                rematch.busy = false;
                renderRematch();
            }
        }

        async function answerRematch(action) {
            const offer = rematch.incoming;
            if (!offer || rematch.busy) {
                return;
            }
            rematch.busy = true;
            clearError();
            renderRematch();
            try {
                const path = '/api/challenges/' + encodeURIComponent(offer.id) + '/' + action;
                const reply = await postJson(path);
                if (reply.ok && reply.data.type === 'game_started') {
                    goToGame(reply.data.url);
                } else if (reply.ok) {
                    onRematchUpdate(reply.data);
                } else {
                    rematch.incoming = null;
                    showError(reply.data.message || 'The rematch offer is no longer open.');
                }
            } catch (e) {
                showError('The server is unreachable; try again.');
            } finally {
                rematch.busy = false;
                renderRematch();
            }
        }

        function renderRematch() {
            const over = !!(game.state && finished());
            const incoming = over ? rematch.incoming : null;
            els.rematch.hidden = !over || incoming !== null;
            els.rematch.disabled = rematch.busy || rematch.outgoing !== null;
            els.rematch.textContent = rematch.outgoing ? 'Rematch offered' : 'Rematch';
            els.rematchOffer.hidden = incoming === null;
            els.rematchText.textContent = incoming ? incoming.from + ' offers a rematch' : '';
            els.rematchAccept.disabled = rematch.busy;
            els.rematchDecline.disabled = rematch.busy;
            let status = rematch.note;
            if (rematch.outgoing) {
                status = 'Waiting for ' + rematch.outgoing.to + ' to accept…';
            }
            els.rematchStatus.textContent = over ? status : '';
        }

        /* -- Controls -- */

        function showResignConfirm() {
            els.resignConfirm.hidden = false;
            els.resign.setAttribute('aria-expanded', 'true');
            els.resignNo.focus();
        }

        function hideResignConfirm(refocus) {
            if (els.resignConfirm.hidden) {
                return;
            }
            els.resignConfirm.hidden = true;
            els.resign.setAttribute('aria-expanded', 'false');
            if (refocus !== false && !els.resign.disabled) {
                els.resign.focus();
            }
        }

        els.resign.setAttribute('aria-expanded', 'false');
        els.resign.setAttribute('aria-controls', 'resign-confirm');
        els.resign.addEventListener('click', showResignConfirm);
        els.resignNo.addEventListener('click', () => hideResignConfirm());
        els.resignYes.addEventListener('click', resign);
        els.resignConfirm.addEventListener('keydown', (evt) => {
            if (evt.key === 'Escape') {
                hideResignConfirm();
            }
        });
        els.rematch.addEventListener('click', offerRematch);
        els.rematchAccept.addEventListener('click', () => answerRematch('accept'));
        els.rematchDecline.addEventListener('click', () => answerRematch('decline'));
        els.offerDraw.addEventListener('click', () => send({type: 'offer_draw'}));
        els.drawAccept.addEventListener('click', () => send({type: 'accept_draw'}));
        els.drawDecline.addEventListener('click', () => send({type: 'decline_draw'}));
        els.chatForm.addEventListener('submit', (evt) => {
            evt.preventDefault();
            const text = els.chatText.value.trim();
            if (!text || game.stopped) {
                return;
            }
            if (text.length > MAX_CHAT) {
                showError('A chat message is at most ' + MAX_CHAT + ' characters.');
                return;
            }
            send({type: 'chat', text: text});
        });

        /* -- Clocks tick locally between messages -- */

        setInterval(() => {
            if (!game.stopped && (game.clock || Object.keys(game.away).length)) {
                renderPlayers();
            }
        }, 250);

        /* -- The socket -- */

        const STOPPED = {
            signed_out: {
                text: 'You are signed out, so this game is no longer live here.',
                link: 'Sign in to continue',
                href: '/login?next=/game/' + encodeURIComponent(gameId),
            },
            other_user: {
                text: 'You are now signed in as someone else, who is not playing this game.',
                link: 'Back to the lobby',
                href: '/',
            },
            not_a_player: {
                text: 'You are not playing this game.',
                link: 'Back to the lobby',
                href: '/',
            },
            no_game: {
                text: 'There is no such game.',
                link: 'Back to the lobby',
                href: '/',
            },
        };

        /** Give up on the socket for good, and say why in #game-error (with a way on). */
        function stop(reason) {
            if (game.stopped) {
                return;
            }
            game.stopped = reason;
            game.connected = false;
            moveInFlight = false;
            game.client.close();
            const why = STOPPED[reason];
            if (errorTimer !== null) {
                clearTimeout(errorTimer);
                errorTimer = null;
            }
            els.error.textContent = why.text + ' ';
            const link = html('a', 'game-error-link', why.link, els.error);
            link.href = why.href;
            els.error.classList.add('game-error-shown');
            renderAll();
        }

        async function getJson(path) {
            const reply = await fetch(path, {credentials: 'same-origin', headers: {Accept: 'application/json'}});
            let data = null;
            try {
                data = await reply.json();
            } catch (e) { /* empty or not JSON */ }
            return {ok: reply.ok, status: reply.status, data: data || {}};
        }

        /**
         * The socket would not open: ask the HTTP API whether this page may follow the
         * game at all. A network error or a server error keeps the page reconnecting.
         */
        let checking = false;
        async function checkAccess() {
            if (checking || game.stopped) {
                return;
            }
            checking = true;
            try {
                const who = await getJson('/api/me');
                if (who.status === 401) {
                    stop('signed_out');
                    return;
                }
                if (!who.ok) {
                    return;
                }
                const view = await getJson('/api/games/' + encodeURIComponent(gameId));
                if (view.status === 401) {
                    stop('signed_out');
                } else if (spectator && who.data.username && who.data.username !== me) {
                    stop('other_user');
                } else if (view.status === 403 && !spectator) {
                    stop(who.data.username && who.data.username !== me ? 'other_user' : 'not_a_player');
                } else if (view.status === 404) {
                    stop('no_game');
                }
            } catch (e) {
                /* the server is unreachable: the socket keeps trying */
            } finally {
                checking = false;
            }
        }

        let opened = false;       // the current connection attempt reached `connected`
        let failedAttempts = 0;   // attempts in a row that never opened
        let refused = false;      // closed by policy (1008) since the last open

        game.client = new window.WS4Redis({
            uri: '/ws/' + gameId + (spectator ? '?subscribe-broadcast' : '?subscribe-user'),
            heartbeat_msg: document.body.dataset.heartbeat || null,
            connecting: () => {
                opened = false;
                renderConnection();
            },
            connected: () => {
                opened = true;
                failedAttempts = 0;
                refused = false;
                game.connected = true;
                game.everConnected = true;
                game.client.send_message(JSON.stringify(
                    {type: 'resume', since: game.lastSeq, chat_since: game.lastChat}));
                renderAll();
            },
            disconnected: (evt) => {
                game.connected = false;
                game.resumed = false;
                moveInFlight = false; // resume will tell us whether it landed
                if (!opened) {
                    failedAttempts += 1;
                }
                // A refused handshake (403) reaches the page only as 1006 before `connected`;
                // a signed-out session's open sockets are closed with 1008.
                if (evt && evt.code === 1008) {
                    refused = true;
                }
                const failed = !opened && (!game.everConnected || refused || failedAttempts >= 3);
                if (!game.stopped && (refused || failed)) {
                    checkAccess();
                }
                renderAll();
            },
            receive_message: onMessage,
        });
        renderAll();
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', init);
    } else {
        init();
    }
}());
