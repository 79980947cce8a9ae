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
 *   {"type":"game_live","game":{...}}            broadcast: a game started (Live games)
 *   {"type":"game_over","game_id"}               broadcast: a live game finished
 * Every (re)connect fetches the snapshot again, then re-applies what arrived
 * while it loaded, so nothing missed while disconnected stays stale.
 *
 * Loaded with `defer`, after ws4redis.js and challenges.js (the challenge lists,
 * shared with the guild page). No inline script, no innerHTML:
 * every user-supplied string goes in through textContent (CSP, XSS).
 * window.playhouseLobby.received lists every message received (for tests).
 */
(function () {
    'use strict';

    const LOBBY_URI = '/ws/lobby?subscribe-broadcast&subscribe-user';
    const RETRY_MS = 3000;
    const STATUS_TEXT = {online: 'online', in_game: 'in game'};
    const CONNECTION_STATES = ['connecting', 'connected', 'disconnected'];

    // Shared helpers (static/challenges.js, loaded first): text only, never markup.
    const {el, same, post, feedback, fillGameSelect} = window.PlayhouseChallenges.util;

    /* ---- Live games: a self-contained panel (GET /api/lobby live_games + diffs) ---- */

    const MAX_LIVE = 50;

    /**
     * The "Live games" panel: `apply(list)` replaces it from a snapshot, `handle(msg)`
     * applies a game_live / game_over diff and returns true when the message was one.
     * `title(kind)` names a game kind; `me()` is the signed-in user.
     */
    function liveGamesPanel(list, title, me) {
        const games = new Map();  // game_id -> {game, li}, newest first

        function valid(game) {
            return game && typeof game.game_id === 'string' && typeof game.url === 'string'
                && game.url.startsWith('/game/') && Array.isArray(game.players);
        }

        function row(game) {
            const li = el('li', 'live-game');
            li.dataset.gameId = game.game_id;
            const text = el('span', 'live-game-text');
            text.appendChild(el('span', 'live-game-kind', title(game.kind)));
            text.appendChild(el('span', 'live-game-players', ' ' + game.players.join(' vs ')));
            li.appendChild(text);
            const mine = game.players.some((p) => same(p, me()));
            const link = el('a', 'button button-small' + (mine ? '' : ' button-quiet') + ' live-game-watch',
                mine ? 'Your game' : 'Watch');
            link.href = game.url;
            link.setAttribute('aria-label', (mine ? 'Return to ' : 'Watch ') + title(game.kind) + ': '
                + game.players.join(' vs '));
            li.appendChild(link);
            return li;
        }

        function render() {
            list.textContent = '';
            for (const entry of games.values()) {
                list.appendChild(entry.li);
            }
            list.dataset.count = String(games.size);
        }

        function apply(snapshot) {
            games.clear();
            for (const game of (Array.isArray(snapshot) ? snapshot : []).filter(valid).slice(0, MAX_LIVE)) {
                games.set(game.game_id, {game: game, li: row(game)});
            }
            render();
        }

        function handle(msg) {
            if (msg.type === 'game_live') {
                if (valid(msg.game) && !games.has(msg.game.game_id)) {
                    const entries = [[msg.game.game_id, {game: msg.game, li: row(msg.game)}], ...games];
                    games.clear();
                    entries.slice(0, MAX_LIVE).forEach(([id, entry]) => games.set(id, entry));
                    render();
                }
                return true;
            }
            if (msg.type === 'game_over') {
                if (games.delete(msg.game_id)) {
                    render();
                }
                return true;
            }
            return false;
        }

        return {apply: apply, handle: handle};
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
            guildFilter: document.getElementById('guild-filter'),
        };
        const {error: showError, clearError, news: showNews} = feedback(els.error, els.news);
        const state = {
            received: [],
            client: null,
            me: null,
            games: [],          // the catalogue, in order
            players: new Map(), // name -> {status, li, select, button}
            challenges: null,   // id -> {challenge, li, countdown}: the board's
            skew: 0,            // server clock minus ours, in ms (only when it matters)
            // The guild whose members alone are listed ('' = everyone; ?guild= on the page
            // URL), and those members, lower-cased (null = everyone).
            guild: new URLSearchParams(window.location.search).get('guild') || '',
            members: null,
        };
        window.playhouseLobby = state;
        const challenges = window.PlayhouseChallenges.board({
            incoming: els.incoming,
            outgoing: els.outgoing,
            me: () => state.me,
            title: (kind) => title(kind),
            skew: () => state.skew,
            error: showError,
            clearError: clearError,
            news: showNews,
            go: go,
        });
        state.challenges = challenges.entries;
        const live = liveGamesPanel(document.getElementById('live-games'), (kind) => title(kind), () => state.me);
        let loadSeq = 0;
        let buffer = null;      // messages received while a snapshot loads
        let retryTimer = null;
        let navigating = false;

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
            fillGameSelect(select, state.games);
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
            if (state.members !== null && !state.members.has(name.toLowerCase())) {
                status = 'offline';  // not in the chosen guild: not listed
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
            await challenges.send(name, select.value);
            const row = state.players.get(name);
            button.disabled = !!row && row.status === 'in_game';
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

        function renderGuildFilter(mine) {
            const select = els.guildFilter;
            const names = Array.isArray(mine) ? mine.filter((g) => typeof g === 'string') : [];
            if (state.guild && !names.some((g) => same(g, state.guild))) {
                names.push(state.guild);  // from the URL: a guild I am not in
            }
            const wanted = ['', ...names];
            const have = [...select.options].map((o) => o.value);
            if (wanted.join('\n') !== have.join('\n')) {
                select.replaceChildren(...wanted.map((g) => {
                    const option = el('option', null, g ? 'Guild: ' + g : 'Everyone');
                    option.value = g;
                    return option;
                }));
            }
            select.value = wanted.find((g) => same(g, state.guild)) || '';
            select.closest('label').hidden = wanted.length < 2;
        }

        function applySnapshot(data) {
            state.me = data.me;
            state.members = Array.isArray(data.guild_members)
                ? new Set(data.guild_members.map((m) => String(m).toLowerCase())) : null;
            renderGuildFilter(data.my_guilds);
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
            challenges.sync(listed);
            setCurrentGame(data.current_game);
            live.apply(data.live_games);
            root.dataset.state = 'ready';
        }

        async function refresh() {
            const mine = ++loadSeq;
            buffer = [];
            clearTimeout(retryTimer);
            let data;
            try {
                const query = state.guild ? '?guild=' + encodeURIComponent(state.guild) : '';
                const reply = await fetch('/api/lobby' + query, {
                    credentials: 'same-origin',
                    headers: {'Accept': 'application/json'},
                });
                if (reply.status === 401) {
                    window.location.assign('/login?next=%2F');
                    return;
                }
                if (reply.status === 404 && state.guild) {
                    state.guild = '';  // that guild is gone: everyone again
                    refresh();
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
            if (!msg || typeof msg !== 'object' || live.handle(msg)) {
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
            } else {
                challenges.handle(msg, replayed);  // challenge, challenge_update, game_started
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

        els.guildFilter.addEventListener('change', () => {
            state.guild = els.guildFilter.value;
            const url = new URL(window.location.href);
            if (state.guild) {
                url.searchParams.set('guild', state.guild);
            } else {
                url.searchParams.delete('guild');
            }
            window.history.replaceState(null, '', url);
            refresh();
        });

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
