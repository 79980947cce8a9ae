/*
 * Playhouse lobby: the signed-in home page. Who is online, challenges in and
 * out, the game catalogue, and the way back into a running game.
 *
 * The state comes from GET /api/lobby; live changes from the socket
 * /ws/lobby?subscribe-broadcast&subscribe-user:
 *   {"type":"presence","user","status"}        broadcast: online / in_game / offline
 *   {"type":"challenge", ...challenge}          user: a new challenge to or from me
 *   {"type":"challenge_update", ...challenge}   user: accepted, declined, cancelled, expired
 *   {"type":"game_started","game_id","url"}     user: go to the game page
 * Every (re)connect fetches the snapshot again, then re-applies what arrived
 * while it loaded, so nothing missed while disconnected stays stale.
 *
 * Loaded with `defer`, after ws4redis.js. No inline script, no innerHTML:
 * every user-supplied string goes in through textContent (CSP, XSS).
 * window.playhouseLobby.received lists every message received (for tests).
 */
(function () {
    'use strict';

    const LOBBY_URI = '/ws/lobby?subscribe-broadcast&subscribe-user';
    const TICK_MS = 1000;
    const NEWS_MS = 10000;
    const ERROR_MS = 15000;
    const RETRY_MS = 3000;
    const STATUS_TEXT = {online: 'online', in_game: 'in game'};
    const CONNECTION_STATES = ['connecting', 'connected', 'disconnected'];

    /** An element with an optional class and text (text only, never markup). */
    function el(tag, className, text) {
        const node = document.createElement(tag);
        if (className) {
            node.className = className;
        }
        if (text !== undefined) {
            node.textContent = text;
        }
        return node;
    }

    function same(a, b) {
        return typeof a === 'string' && typeof b === 'string' && a.toLowerCase() === b.toLowerCase();
    }

    function xsrfToken() {
        const match = document.cookie.match(/(?:^|;\s*)_xsrf=([^;]*)/);
        return match ? decodeURIComponent(match[1]) : null;
    }

    async function xsrfHeader() {
        let token = xsrfToken();
        if (token === null) {  // no form on the page set it: ask for one
            const reply = await fetch('/api/xsrf', {credentials: 'same-origin'});
            token = (await reply.json()).xsrf;
        }
        return token;
    }

    /** POST JSON; resolves to {ok, status, data} (data is {} when the body is not JSON). */
    async function post(path, body) {
        const reply = await fetch(path, {
            method: 'POST',
            credentials: 'same-origin',
            headers: {'Content-Type': 'application/json', 'X-XSRFToken': await xsrfHeader()},
            body: JSON.stringify(body || {}),
        });
        let data = {};
        try {
            data = (await reply.json()) || {};
        } catch (e) { /* empty or not JSON */ }
        return {ok: reply.ok, status: reply.status, data: data};
    }

    /** "1:05" from milliseconds. */
    function clock(ms) {
        const seconds = Math.max(0, Math.ceil(ms / 1000));
        return Math.floor(seconds / 60) + ':' + String(seconds % 60).padStart(2, '0');
    }

    function init() {
        const root = document.getElementById('lobby');
        if (!root) {
            return;
        }
        const els = {
            online: document.getElementById('online'),
            incoming: document.getElementById('incoming'),
            outgoing: document.getElementById('outgoing'),
            catalogue: document.getElementById('catalogue-list'),
            error: document.getElementById('lobby-error'),
            news: document.getElementById('lobby-news'),
            current: document.getElementById('current-game'),
            currentLink: document.getElementById('current-game-link'),
            currentText: document.querySelector('#current-game .current-game-text'),
            connection: document.getElementById('lobby-connection'),
        };
        const state = {
            received: [],
            client: null,
            me: null,
            games: [],          // the catalogue, in order
            players: new Map(), // name -> {status, li, select, button}
            challenges: new Map(), // id -> {challenge, li, countdown}
            skew: 0,            // server clock minus ours, in ms (only when it matters)
        };
        window.playhouseLobby = state;
        let loadSeq = 0;
        let buffer = null;      // messages received while a snapshot loads
        let retryTimer = null;
        let newsTimer = null;
        let errorTimer = null;
        let navigating = false;

        /* -- Feedback -- */

        function showError(message) {
            els.error.textContent = message || 'Something went wrong.';
            els.error.hidden = false;
            clearTimeout(errorTimer);
            errorTimer = setTimeout(clearError, ERROR_MS);
        }

        function clearError() {
            els.error.hidden = true;
            els.error.textContent = '';
        }

        function showNews(text) {
            els.news.textContent = text;
            els.news.hidden = false;
            clearTimeout(newsTimer);
            newsTimer = setTimeout(() => { els.news.hidden = true; }, NEWS_MS);
        }

        function setConnection(name) {
            els.connection.textContent = name;
            for (const s of CONNECTION_STATES) {
                els.connection.classList.toggle('status-' + s, s === name);
            }
        }

        function go(url) {
            if (navigating || typeof url !== 'string' || !url.startsWith('/game/')) {
                return;
            }
            navigating = true;
            window.location.assign(url);
        }

        function title(kind) {
            const game = state.games.find((g) => g.kind === kind);
            return game ? game.title : kind;
        }

        /* -- Catalogue -- */

        function twoPlayer(game) {
            return game.min_players <= 2 && 2 <= game.max_players;
        }

        function renderCatalogue() {
            els.catalogue.replaceChildren(...state.games.map((game) => {
                const li = el('li', 'catalogue-item');
                li.dataset.kind = game.kind;
                li.appendChild(el('h3', 'catalogue-title', game.title));
                li.appendChild(el('p', 'catalogue-summary', game.summary));
                const seats = game.min_players === game.max_players
                    ? game.min_players + ' players'
                    : game.min_players + '–' + game.max_players + ' players';
                li.appendChild(el('p', 'catalogue-seats', seats));
                return li;
            }));
        }

        function gameOptions(select) {
            const chosen = select.value;
            select.replaceChildren(...state.games.filter(twoPlayer).map((game) => {
                const option = el('option', null, game.title);
                option.value = game.kind;
                return option;
            }));
            if (chosen && state.games.some((g) => g.kind === chosen)) {
                select.value = chosen;
            }
        }

        /* -- Players -- */

        function playerRow(name) {
            const li = el('li', 'player');
            li.dataset.user = name;
            const who = el('span', 'player-who');
            who.appendChild(el('span', 'player-name', name));
            const badge = el('span', 'player-status');
            who.appendChild(badge);
            const form = el('span', 'player-actions');
            const select = el('select', 'challenge-game');
            select.setAttribute('aria-label', 'Game to play with ' + name);
            gameOptions(select);
            const button = el('button', 'challenge button button-small', 'Challenge');
            button.type = 'button';
            button.setAttribute('aria-label', 'Challenge ' + name);
            button.addEventListener('click', () => sendChallenge(name, select, button));
            form.appendChild(select);
            form.appendChild(button);
            li.appendChild(who);
            li.appendChild(form);
            return {status: null, li: li, select: select, button: button, badge: badge};
        }

        function setPlayer(name, status) {
            if (same(name, state.me)) {
                return;  // not challengeable; the header says who you are
            }
            let row = state.players.get(name);
            if (status === 'offline' || !STATUS_TEXT[status]) {
                if (row) {
                    row.li.remove();
                    state.players.delete(name);
                }
                return;
            }
            if (!row) {
                row = playerRow(name);
                state.players.set(name, row);
                const after = [...els.online.children].find(
                    (li) => li.dataset.user.toLowerCase() > name.toLowerCase());
                els.online.insertBefore(row.li, after || null);
            }
            row.status = status;
            row.badge.textContent = STATUS_TEXT[status];
            row.badge.className = 'player-status player-' + status.replace('_', '-');
            row.li.classList.toggle('player-busy', status === 'in_game');
            row.select.disabled = status === 'in_game';
            row.button.disabled = status === 'in_game';
        }

        async function sendChallenge(name, select, button) {
            button.disabled = true;
            try {
                const reply = await post('/api/challenges', {to: name, game: select.value});
                if (!reply.ok) {
                    showError(reply.data.message || 'The challenge was refused (' + reply.status + ').');
                    return;
                }
                clearError();
                addChallenge(reply.data);
                showNews('Challenge sent to ' + reply.data.to + '.');
            } catch (e) {
                showError('Cannot reach the server. Try again.');
            } finally {
                const row = state.players.get(name);
                button.disabled = !!row && row.status === 'in_game';
            }
        }

        /* -- Challenges -- */

        function challengeRow(c, incoming) {
            const li = el('li', 'challenge-item');
            li.dataset.challenge = c.id;
            li.dataset.created = c.created_at;
            const text = el('span', 'challenge-text');
            if (incoming) {
                text.appendChild(el('b', 'challenge-who', c.from));
                text.appendChild(document.createTextNode(' challenges you to '));
                text.appendChild(el('span', 'challenge-title', title(c.game)));
            } else {
                text.appendChild(el('span', 'challenge-title', title(c.game)));
                text.appendChild(document.createTextNode(' vs '));
                text.appendChild(el('b', 'challenge-who', c.to));
            }
            const countdown = el('time', 'countdown');
            countdown.dateTime = c.expires_at;
            countdown.setAttribute('aria-hidden', 'true');
            const actions = el('span', 'challenge-actions');
            const buttons = incoming
                ? [['accept', 'Accept', 'button'], ['decline', 'Decline', 'button button-quiet']]
                : [['cancel', 'Cancel', 'button button-quiet']];
            for (const [action, label, style] of buttons) {
                const button = el('button', action + ' ' + style + ' button-small', label);
                button.type = 'button';
                button.addEventListener('click', () => answer(c, action, li));
                actions.appendChild(button);
            }
            li.appendChild(text);
            li.appendChild(countdown);
            li.appendChild(actions);
            return {li: li, countdown: countdown};
        }

        function addChallenge(c) {
            if (!c || typeof c.id !== 'string' || c.status !== 'pending') {
                return;
            }
            const incoming = same(c.to, state.me);
            if (!incoming && !same(c.from, state.me)) {
                return;
            }
            if (state.challenges.has(c.id) || remaining(c) <= 0) {
                return;
            }
            const row = challengeRow(c, incoming);
            state.challenges.set(c.id, {challenge: c, li: row.li, countdown: row.countdown});
            const list = incoming ? els.incoming : els.outgoing;
            const older = [...list.children].find((li) => li.dataset.created < c.created_at);
            list.insertBefore(row.li, older || null);
            tickOne(state.challenges.get(c.id));
        }

        function removeChallenge(id) {
            const entry = state.challenges.get(id);
            if (!entry) {
                return;
            }
            state.challenges.delete(id);
            const list = entry.li.parentNode;
            const hadFocus = entry.li.contains(document.activeElement);
            entry.li.remove();
            if (hadFocus && list) {  // keep keyboard users in the same list
                const next = list.querySelector('button');
                const heading = list.parentNode.querySelector('h2');
                if (next) {
                    next.focus();
                } else if (heading) {
                    heading.tabIndex = -1;
                    heading.focus();
                }
            }
        }

        function remaining(c) {
            return Date.parse(c.expires_at) - (Date.now() + state.skew);
        }

        function tickOne(entry) {
            const left = remaining(entry.challenge);
            if (left <= 0) {
                removeChallenge(entry.challenge.id);
                return;
            }
            entry.countdown.textContent = clock(left);
            entry.countdown.classList.toggle('countdown-low', left < 10000);
        }

        function tick() {
            for (const entry of [...state.challenges.values()]) {
                tickOne(entry);
            }
        }

        async function answer(c, action, li) {
            for (const b of li.querySelectorAll('button')) {
                b.disabled = true;
            }
            try {
                const reply = await post('/api/challenges/' + encodeURIComponent(c.id) + '/' + action);
                if (reply.ok) {
                    clearError();
                    if (reply.data.type === 'game_started') {
                        go(reply.data.url);
                    } else {
                        settled(reply.data, false);
                    }
                    return;
                }
                showError(reply.data.message || 'That did not work (' + reply.status + ').');
                if (['expired', 'not_pending', 'not_found'].includes(reply.data.error)) {
                    removeChallenge(c.id);
                    return;
                }
            } catch (e) {
                showError('Cannot reach the server. Try again.');
            }
            for (const b of li.querySelectorAll('button')) {
                b.disabled = false;
            }
        }

        /** A challenge left "pending": drop it and say what happened. */
        function settled(c, quiet) {
            removeChallenge(c.id);
            if (quiet) {
                return;
            }
            const game = title(c.game);
            const mine = same(c.from, state.me);
            const text = {
                accepted: mine ? c.to + ' accepted your ' + game + ' challenge. Starting…'
                    : 'Starting ' + game + ' with ' + c.from + '…',
                declined: mine ? c.to + ' declined your ' + game + ' challenge.'
                    : 'You declined ' + c.from + '’s ' + game + ' challenge.',
                cancelled: mine ? 'You cancelled your ' + game + ' challenge to ' + c.to + '.'
                    : c.from + ' withdrew their ' + game + ' challenge.',
                expired: mine ? 'Your ' + game + ' challenge to ' + c.to + ' expired.'
                    : c.from + '’s ' + game + ' challenge expired.',
            }[c.status];
            if (text) {
                showNews(text);
            }
        }

        /* -- Snapshot and messages -- */

        function setCurrentGame(current) {
            const url = current && typeof current.url === 'string' && current.url.startsWith('/game/')
                ? current.url : null;
            els.current.hidden = url === null;
            if (url === null) {
                return;
            }
            els.currentLink.href = url;
            const others = (current.players || []).filter((p) => !same(p, state.me));
            els.currentText.textContent = current.kind
                ? 'You are playing ' + title(current.kind)
                    + (others.length ? ' with ' + others.join(', ') : '') + '.'
                : 'You are in a game.';
        }

        function applySnapshot(data) {
            state.me = data.me;
            if (Array.isArray(data.games) && data.games.length !== state.games.length) {
                state.games = data.games;
                renderCatalogue();
                for (const row of state.players.values()) {
                    gameOptions(row.select);
                }
            }
            const online = new Map((data.online || []).map((p) => [p.username, p.status]));
            for (const name of [...state.players.keys()]) {
                if (!online.has(name)) {
                    setPlayer(name, 'offline');
                }
            }
            for (const [name, status] of online) {
                setPlayer(name, status);
            }
            const open = (data.challenges || {});
            const listed = [...(open.incoming || []), ...(open.outgoing || [])];
            const ids = new Set(listed.map((c) => c.id));
            for (const id of [...state.challenges.keys()]) {
                if (!ids.has(id)) {
                    removeChallenge(id);
                }
            }
            listed.forEach(addChallenge);
            setCurrentGame(data.current_game);
            root.dataset.state = 'ready';
        }

        async function refresh() {
            const mine = ++loadSeq;
            buffer = [];
            clearTimeout(retryTimer);
            let data;
            try {
                const reply = await fetch('/api/lobby', {
                    credentials: 'same-origin',
                    headers: {'Accept': 'application/json'},
                });
                if (reply.status === 401) {
                    window.location.assign('/login?next=%2F');
                    return;
                }
                if (!reply.ok) {
                    throw new Error('GET /api/lobby answered ' + reply.status);
                }
                const served = Date.parse(reply.headers.get('Date') || '');
                // The Date header has a one-second resolution: only a real skew counts.
                const skew = Number.isNaN(served) ? 0 : served - Date.now();
                state.skew = Math.abs(skew) > 2000 ? skew : 0;
                data = await reply.json();
            } catch (e) {
                if (mine === loadSeq) {
                    buffer = null;
                    showError('Cannot load the lobby; retrying…');
                    retryTimer = setTimeout(refresh, RETRY_MS);
                }
                return;
            }
            if (mine !== loadSeq) {
                return;  // a newer load is under way
            }
            const replay = buffer;
            buffer = null;
            if (els.error.textContent.startsWith('Cannot load the lobby')) {
                clearError();
            }
            applySnapshot(data);
            replay.forEach((msg) => handle(msg, true));
        }

        function handle(msg, replayed) {
            if (!msg || typeof msg !== 'object') {
                return;
            }
            if (msg.type === 'presence' && typeof msg.user === 'string') {
                if (same(msg.user, state.me)) {
                    if (!replayed) {
                        refresh();  // my game started or ended elsewhere
                    }
                    return;
                }
                setPlayer(msg.user, msg.status);
            } else if (msg.type === 'challenge') {
                addChallenge(msg);
            } else if (msg.type === 'challenge_update') {
                settled(msg, replayed);
            } else if (msg.type === 'game_started') {
                go(msg.url);
            }
        }

        function receive(raw) {
            state.received.push(raw);
            let msg;
            try {
                msg = JSON.parse(raw);
            } catch (e) {
                return;  // not ours (plain text)
            }
            if (buffer !== null) {
                buffer.push(msg);
            }
            if (state.me !== null) {
                handle(msg, false);
            }
        }

        setInterval(tick, TICK_MS);
        refresh().then(() => {
            state.client = new window.WS4Redis({
                uri: LOBBY_URI,
                heartbeat_msg: document.body.dataset.heartbeat || null,
                connecting: () => setConnection('connecting'),
                connected: () => {
                    setConnection('connected');
                    refresh();
                },
                disconnected: () => setConnection('disconnected'),
                receive_message: receive,
            });
        });
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', init);
    } else {
        init();
    }
}());
