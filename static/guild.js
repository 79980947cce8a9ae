/*
 * Playhouse guild page (/guilds/<name>): my standing (join, ask, withdraw, leave),
 * the members with their live status, the owner's tools (requests, remove, hand
 * over), challenges to members who are online, and the guild chat.
 *
 * State: GET /api/guilds/<name> (the view), GET /api/guilds/<name>/chat (members),
 * GET /api/lobby (game catalogue and my open challenges). Live changes:
 *   /ws/guild?subscribe-user&subscribe-group
 *     group: guild_chat, guild_member {username, change}, guild_owner {owner}
 *     user:  guild_request (to the owner), guild_answer (to the requester),
 *            guild_member removed/left (to that user)
 *     Messages of my other guilds arrive too: filtered by `guild`.
 *   /ws/lobby?subscribe-broadcast&subscribe-user
 *     broadcast: presence {user, status}; user: challenge, challenge_update, game_started
 * Membership events re-fetch the view; presence diffs update statuses in place
 * (and are re-applied over a view that was loading while they arrived).
 *
 * Loaded with `defer`, after ws4redis.js and challenges.js. No innerHTML: every
 * user-supplied string goes in through textContent.
 * window.playhouseGuild exposes the state (for tests).
 */
(function () {
    'use strict';

    const GUILD_URI = '/ws/guild?subscribe-user&subscribe-group';
    const LOBBY_URI = '/ws/lobby?subscribe-broadcast&subscribe-user';
    const RETRY_MS = 3000;
    const MAX_CHAT = 200;
    const STATUS_TEXT = {online: 'online', in_game: 'in game', offline: 'offline'};

    function init() {
        const root = document.getElementById('guild');
        if (!root || !window.PlayhouseChallenges) {
            return;
        }
        const {el, same, post, feedback, fillGameSelect} = window.PlayhouseChallenges.util;
        const guild = root.dataset.guild;
        const api = '/api/guilds/' + encodeURIComponent(guild);
        const byId = (id) => document.getElementById(id);
        const els = {
            owner: byId('guild-owner'),
            count: byId('guild-members-count'),
            error: byId('guild-error'),
            news: byId('guild-news'),
            connection: byId('guild-connection'),
            standing: byId('standing-text'),
            join: byId('guild-join'),
            leave: byId('guild-leave'),
            requestsPanel: byId('requests-panel'),
            requests: byId('requests'),
            members: byId('members'),
            incoming: byId('incoming'),
            outgoing: byId('outgoing'),
            chatPanel: byId('chat-panel'),
            chatLog: byId('chat-log'),
            chatForm: byId('chat-form'),
            chatInput: byId('chat-input'),
            chatSend: byId('chat-send'),
            chatError: byId('chat-error'),
        };
        const state = {
            me: root.dataset.me,
            view: null,
            games: [],
            rows: new Map(),     // lower-case username -> member row
            chat: new Map(),     // seq -> li
            chatLoaded: false,
            sockets: {guild: null, lobby: null},
            connection: {guild: 'connecting', lobby: 'connecting'},
            received: [],
        };
        window.playhouseGuild = state;
        let viewSeq = 0;
        let viewBuffer = null;   // presence diffs received while the view loads
        let lobbySeq = 0;
        let lobbyBuffer = null;  // lobby messages received while GET /api/lobby loads
        let chatSeq = 0;
        let retryTimer = null;
        let navigating = false;

        const {error: showError, clearError, news: showNews} = feedback(els.error, els.news);

        function setConnection(which, name) {
            state.connection[which] = name;
            const all = Object.values(state.connection);
            const shown = all.every((s) => s === 'connected') ? 'connected'
                : all.includes('disconnected') ? 'disconnected' : 'connecting';
            els.connection.textContent = shown;
            for (const s of ['connecting', 'connected', 'disconnected']) {
                els.connection.classList.toggle('status-' + s, s === shown);
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

        const challenges = window.PlayhouseChallenges.board({
            incoming: els.incoming,
            outgoing: els.outgoing,
            me: () => state.me,
            title: title,
            error: showError,
            clearError: clearError,
            news: showNews,
            go: go,
        });

        /** POST an action; on success run `done(data)` and reload the view. */
        async function act(path, body, buttons, done) {
            buttons.forEach((b) => { b.disabled = true; });
            try {
                const reply = await post(api + path, body);
                if (!reply.ok) {
                    showError(reply.data.message || 'That did not work (' + reply.status + ').');
                } else {
                    clearError();
                    if (done) {
                        done(reply.data);
                    }
                }
            } catch (e) {
                showError('Cannot reach the server. Try again.');
            } finally {
                buttons.forEach((b) => { b.disabled = false; });
            }
            loadView();
        }

        function smallButton(className, label, aria, onClick) {
            const button = el('button', className + ' button button-small', label);
            button.type = 'button';
            if (aria) {
                button.setAttribute('aria-label', aria);
            }
            button.addEventListener('click', () => onClick(button));
            return button;
        }

        /* -- Members -- */

        function gameOptions(select) {
            fillGameSelect(select, state.games);
        }

        function memberRow(name) {
            const li = el('li', 'player guild-member');
            li.dataset.user = name;
            const who = el('span', 'player-who');
            who.appendChild(el('span', 'player-name', name));
            const role = el('span', 'member-role');
            who.appendChild(role);
            const badge = el('span', 'player-status');
            who.appendChild(badge);
            li.appendChild(who);

            const challenge = el('span', 'player-actions member-challenge');
            const select = el('select', 'challenge-game');
            select.setAttribute('aria-label', 'Game to play with ' + name);
            gameOptions(select);
            const button = smallButton('challenge', 'Challenge', 'Challenge ' + name, async (b) => {
                b.disabled = true;
                await challenges.send(name, select.value);
                b.disabled = false;
            });
            challenge.appendChild(select);
            challenge.appendChild(button);
            li.appendChild(challenge);

            const manage = el('span', 'player-actions member-manage');
            manage.appendChild(smallButton('make-owner button-quiet', 'Make owner',
                'Make ' + name + ' the owner', (b) => act('/owner', {username: name}, [b],
                    () => showNews(name + ' now owns the guild.'))));
            manage.appendChild(smallButton('remove button-quiet', 'Remove',
                'Remove ' + name + ' from the guild', (b) => act(
                    '/members/' + encodeURIComponent(name) + '/remove', {}, [b],
                    () => showNews(name + ' was removed.'))));
            li.appendChild(manage);
            return {name: name, li: li, role: role, badge: badge, select: select,
                challenge: challenge, manage: manage, status: null};
        }

        function setStatus(row, status) {
            const known = STATUS_TEXT[status] ? status : 'offline';
            row.status = known;
            row.li.dataset.status = known;
            row.badge.textContent = STATUS_TEXT[known];
            row.badge.className = 'player-status player-' + known.replace('_', '-');
            row.li.classList.toggle('player-busy', known === 'in_game');
            // Challenge only someone else who is online and not already playing.
            row.challenge.hidden = known !== 'online' || same(row.name, state.me);
        }

        function renderMembers(members, owner) {
            const keep = new Set();
            members.forEach((m, i) => {
                const key = m.username.toLowerCase();
                keep.add(key);
                let row = state.rows.get(key);
                if (!row) {
                    row = memberRow(m.username);
                    state.rows.set(key, row);
                }
                row.role.textContent = m.role === 'owner' ? 'owner' : 'member';
                row.role.className = 'member-role member-role-' + (m.role === 'owner' ? 'owner' : 'member');
                row.li.dataset.role = m.role;
                row.manage.hidden = !owner || same(m.username, state.me);
                setStatus(row, m.status);
                if (els.members.children[i] !== row.li) {
                    els.members.insertBefore(row.li, els.members.children[i] || null);
                }
            });
            for (const [key, row] of [...state.rows]) {
                if (!keep.has(key)) {
                    row.li.remove();
                    state.rows.delete(key);
                }
            }
            // Server-rendered rows (before the first load) are not ours: drop them.
            const ours = new Set([...state.rows.values()].map((row) => row.li));
            for (const li of [...els.members.children]) {
                if (!ours.has(li)) {
                    li.remove();
                }
            }
        }

        function presence(msg) {
            const row = state.rows.get(msg.user.toLowerCase());
            if (row) {
                setStatus(row, msg.status);
            }
        }

        /* -- Requests (owner) -- */

        function renderRequests(requests, owner) {
            els.requestsPanel.hidden = !owner;
            const wanted = owner ? requests : [];
            const have = new Map([...els.requests.children].map((li) => [li.dataset.user, li]));
            const names = new Set(wanted.map((r) => r.username));
            for (const [name, li] of have) {
                if (!names.has(name)) {
                    li.remove();
                }
            }
            for (const r of wanted) {
                if (have.has(r.username)) {
                    continue;
                }
                const li = el('li', 'player guild-request');
                li.dataset.user = r.username;
                const who = el('span', 'player-who');
                who.appendChild(el('span', 'player-name', r.username));
                who.appendChild(el('span', 'member-role', 'asks to join'));
                li.appendChild(who);
                const actions = el('span', 'player-actions');
                const path = '/requests/' + encodeURIComponent(r.username) + '/';
                const accept = smallButton('accept', 'Accept', 'Accept ' + r.username, () =>
                    act(path + 'accept', {}, [accept, decline], () => showNews(r.username + ' joined.')));
                const decline = smallButton('decline button-quiet', 'Decline', 'Decline ' + r.username,
                    () => act(path + 'decline', {}, [accept, decline],
                        () => showNews('You declined ' + r.username + '.')));
                actions.appendChild(accept);
                actions.appendChild(decline);
                li.appendChild(actions);
                els.requests.appendChild(li);
            }
        }

        /* -- My standing -- */

        function renderStanding(view) {
            const me = view.me;
            const standing = me.owner ? 'owner' : me.member ? 'member' : me.pending ? 'pending' : 'none';
            root.dataset.standing = standing;
            const alone = view.members.length <= 1;
            els.standing.textContent = {
                owner: alone ? 'You own this guild and are its only member.'
                    : 'You own this guild. Hand it over to a member before you leave.',
                member: 'You are a member.',
                pending: 'Your request to join is pending: the owner decides.',
                none: view.guild.open ? 'This guild is open: anyone may join.'
                    : 'This guild is closed: ask the owner to let you in.',
            }[standing];
            els.join.hidden = standing !== 'none';
            els.join.textContent = view.guild.open ? 'Join' : 'Ask to join';
            els.leave.hidden = standing === 'none' || (standing === 'owner' && !alone);
            els.leave.textContent = {
                owner: 'Dissolve the guild',
                member: 'Leave',
                pending: 'Withdraw request',
            }[standing] || 'Leave';
        }

        function applyView(view) {
            const wasMember = !!(state.view && state.view.me.member);
            state.view = view;
            els.owner.textContent = view.guild.owner;
            els.count.textContent = String(view.guild.members);
            renderStanding(view);
            renderMembers(view.members, view.me.owner);
            renderRequests(view.requests || [], view.me.owner);
            els.chatPanel.hidden = !view.me.member;
            if (view.me.member && (!wasMember || !state.chatLoaded)) {
                loadChat();
            } else if (!view.me.member) {
                state.chat.clear();
                els.chatLog.textContent = '';
                state.chatLoaded = false;
            }
            root.dataset.state = 'ready';
        }

        async function getJson(path) {
            const reply = await fetch(path, {
                credentials: 'same-origin',
                headers: {'Accept': 'application/json'},
            });
            if (reply.status === 401) {
                window.location.assign('/login?next=' + encodeURIComponent(window.location.pathname));
                return null;
            }
            let data = {};
            try {
                data = await reply.json();
            } catch (e) { /* not JSON */ }
            if (!reply.ok) {
                const error = new Error(data.message || 'GET ' + path + ' answered ' + reply.status);
                error.status = reply.status;
                throw error;
            }
            return data;
        }

        async function loadView() {
            const mine = ++viewSeq;
            if (viewBuffer === null) {
                viewBuffer = [];
            }
            clearTimeout(retryTimer);
            let view;
            try {
                view = await getJson(api);
            } catch (e) {
                if (mine !== viewSeq) {
                    return;
                }
                viewBuffer = null;
                if (e.status === 404) {
                    root.dataset.state = 'gone';
                    showError('This guild no longer exists.');
                    els.join.hidden = true;
                    els.leave.hidden = true;
                    els.chatPanel.hidden = true;
                    return;
                }
                showError('Cannot load the guild; retrying…');
                retryTimer = setTimeout(loadView, RETRY_MS);
                return;
            }
            if (view === null || mine !== viewSeq) {
                return;  // leaving for the login page, or a newer load is under way
            }
            const replay = viewBuffer;
            viewBuffer = null;
            if (els.error.textContent.startsWith('Cannot load the guild')) {
                clearError();
            }
            applyView(view);
            replay.forEach(presence);
        }

        /* -- Chat -- */

        function timeOf(ms) {
            const at = new Date(ms);
            return String(at.getHours()).padStart(2, '0') + ':' + String(at.getMinutes()).padStart(2, '0');
        }

        function addChat(line) {
            if (!line || typeof line.seq !== 'number' || typeof line.text !== 'string'
                || state.chat.has(line.seq)) {
                return;
            }
            const li = el('li', 'chat-line');
            li.dataset.seq = String(line.seq);
            li.dataset.from = String(line.from);
            const when = el('time', 'chat-time', timeOf(line.at));
            if (Number.isFinite(line.at)) {
                when.dateTime = new Date(line.at).toISOString();
            }
            li.appendChild(when);
            li.appendChild(el('b', 'chat-from', String(line.from)));
            li.appendChild(el('span', 'chat-text', line.text));
            const log = els.chatLog;
            const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
            const later = [...log.children].find((x) => Number(x.dataset.seq) > line.seq);
            log.insertBefore(li, later || null);
            state.chat.set(line.seq, li);
            while (state.chat.size > MAX_CHAT) {
                const oldest = log.firstElementChild;
                state.chat.delete(Number(oldest.dataset.seq));
                oldest.remove();
            }
            if (atBottom || !later) {
                log.scrollTop = log.scrollHeight;
            }
        }

        async function loadChat() {
            const mine = ++chatSeq;
            let data;
            try {
                data = await getJson(api + '/chat');
            } catch (e) {
                if (e.status !== 403 && e.status !== 404 && mine === chatSeq) {
                    showChatError('Cannot load the chat history.');
                }
                return;
            }
            if (data === null || mine !== chatSeq) {
                return;
            }
            state.chatLoaded = true;
            (data.messages || []).forEach(addChat);
        }

        function showChatError(text) {
            els.chatError.textContent = text;
            els.chatError.hidden = false;
            els.chatInput.setAttribute('aria-invalid', 'true');
        }

        function clearChatError() {
            els.chatError.hidden = true;
            els.chatError.textContent = '';
            els.chatInput.removeAttribute('aria-invalid');
        }

        async function sendChat(evt) {
            evt.preventDefault();
            const text = els.chatInput.value;
            if (!text.trim()) {
                showChatError('Type a message first.');
                els.chatInput.focus();
                return;
            }
            els.chatSend.disabled = true;
            try {
                const reply = await post(api + '/chat', {text: text});
                if (reply.ok) {
                    clearChatError();
                    addChat(reply.data);
                    if (els.chatInput.value === text) {
                        els.chatInput.value = '';
                    }
                } else if (reply.status === 429) {
                    showChatError(reply.data.message || 'You are sending too fast. Wait a moment.');
                } else {
                    showChatError(reply.data.message || 'The message was refused (' + reply.status + ').');
                }
            } catch (e) {
                showChatError('Cannot reach the server. Try again.');
            } finally {
                els.chatSend.disabled = false;
                els.chatInput.focus();
            }
        }

        /* -- Lobby: catalogue, challenges -- */

        async function loadLobby() {
            const mine = ++lobbySeq;
            if (lobbyBuffer === null) {
                lobbyBuffer = [];
            }
            let data;
            try {
                data = await getJson('/api/lobby');
            } catch (e) {
                if (mine === lobbySeq) {
                    lobbyBuffer = null;
                    showError('Cannot load the game catalogue; retrying…');
                    setTimeout(loadLobby, RETRY_MS);
                }
                return;
            }
            if (data === null || mine !== lobbySeq) {
                return;
            }
            const replay = lobbyBuffer;
            lobbyBuffer = null;
            if (els.error.textContent.startsWith('Cannot load the game catalogue')) {
                clearError();
            }
            if (typeof data.me === 'string') {
                state.me = data.me;
            }
            if (Array.isArray(data.games)) {
                state.games = data.games;
                for (const row of state.rows.values()) {
                    gameOptions(row.select);
                }
            }
            const open = data.challenges || {};
            challenges.sync([...(open.incoming || []), ...(open.outgoing || [])]);
            replay.forEach((msg) => lobbyMessage(msg, true));
        }

        function lobbyMessage(msg, replayed) {
            if (msg.type === 'presence' && typeof msg.user === 'string') {
                presence(msg);
            } else {
                challenges.handle(msg, replayed);
            }
        }

        /* -- Sockets -- */

        function parse(raw) {
            state.received.push(raw);
            try {
                const msg = JSON.parse(raw);
                return msg && typeof msg === 'object' ? msg : null;
            } catch (e) {
                return null;  // not ours (plain text)
            }
        }

        function receiveGuild(raw) {
            const msg = parse(raw);
            if (!msg || !same(msg.guild, guild)) {
                return;  // another guild of mine, or not a guild event
            }
            if (msg.type === 'guild_chat') {
                if (state.view && state.view.me.member) {
                    addChat(msg);
                }
                return;
            }
            if (msg.type === 'guild_member' && typeof msg.username === 'string') {
                const who = same(msg.username, state.me) ? 'You' : msg.username;
                showNews({
                    joined: who + ' joined ' + guild + '.',
                    left: who + ' left ' + guild + '.',
                    removed: same(msg.username, state.me) ? 'You were removed from ' + guild + '.'
                        : msg.username + ' was removed from ' + guild + '.',
                }[msg.change] || guild + ' changed.');
            } else if (msg.type === 'guild_owner' && typeof msg.owner === 'string') {
                showNews(same(msg.owner, state.me) ? 'You now own ' + guild + '.'
                    : msg.owner + ' now owns ' + guild + '.');
            } else if (msg.type === 'guild_request' && typeof msg.username === 'string') {
                showNews(msg.username + ' asks to join ' + guild + '.');
            } else if (msg.type === 'guild_answer') {
                showNews(msg.accepted ? 'Welcome! You are now a member of ' + guild + '.'
                    : 'Your request to join ' + guild + ' was declined.');
            } else {
                return;
            }
            loadView();
        }

        function receiveLobby(raw) {
            const msg = parse(raw);
            if (!msg) {
                return;
            }
            if (msg.type === 'presence' && viewBuffer !== null) {
                viewBuffer.push(msg);
            }
            if (lobbyBuffer !== null) {
                lobbyBuffer.push(msg);
                return;
            }
            lobbyMessage(msg, false);
        }

        function connect(which, uri, receive, onConnected) {
            state.sockets[which] = new window.WS4Redis({
                uri: uri,
                heartbeat_msg: document.body.dataset.heartbeat || null,
                connecting: () => setConnection(which, 'connecting'),
                connected: () => {
                    setConnection(which, 'connected');
                    onConnected();
                },
                disconnected: () => setConnection(which, 'disconnected'),
                receive_message: receive,
            });
        }

        els.join.addEventListener('click', () => act('/join', {}, [els.join], (data) => {
            showNews(data.state === 'pending' ? 'Request sent: the owner decides.'
                : 'You joined ' + guild + '.');
        }));
        els.leave.addEventListener('click', () => act('/leave', {}, [els.leave], (data) => {
            if (data.dissolved) {
                window.location.assign('/guilds');
            } else {
                showNews(data.withdrawn ? 'Request withdrawn.' : 'You left ' + guild + '.');
            }
        }));
        els.chatForm.addEventListener('submit', sendChat);
        els.chatInput.addEventListener('input', () => {
            if (!els.chatError.hidden) {
                clearChatError();
            }
        });

        Promise.all([loadView(), loadLobby()]).then(() => {
            connect('guild', GUILD_URI, receiveGuild, () => {
                loadView();
                if (state.view && state.view.me.member) {
                    loadChat();
                }
            });
            connect('lobby', LOBBY_URI, receiveLobby, () => {
                loadLobby();
                loadView();
            });
        });
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', init);
    } else {
        init();
    }
}());
