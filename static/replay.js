/*
 * Playhouse replay page: steps through a finished game's positions, fetched once from
 * GET /api/games/<id>/replay (every position rebuilt by the server from the seed and
 * the event log; spectator views only). The board is drawn read-only by the game's own
 * module, window.PlayhouseBoards[kind] (static/boards/<kind>.js), with myTurn false
 * and a `send` that does nothing.
 *
 * Position 0 is the start; position k shows the game after its k-th event. Controls:
 * First / Previous / Next / Last / Play-Pause (one event a second), a click on a move,
 * and the keys Left, Right, Home, End and Space.
 *
 * Loaded with `defer` after the board module and game.js (window.PlayhouseUI).
 * No inline script, no innerHTML: every text from the server goes in through textContent.
 */
(function () {
    'use strict';

    const STEP_MS = 1000;
    const FAILURES = {
        401: ['Sign in to watch this replay.', 'Sign in', null],
        404: ['There is no such game.', 'Back to the lobby', '/'],
        409: ['This game is still being played; it can be replayed once it is over.',
            'Back to the lobby', '/'],
    };

    function init() {
        const root = document.getElementById('replay');
        if (!root) {
            return;
        }
        const ui = window.PlayhouseUI;
        const {html, eventText, resultText} = ui;
        const gameId = root.dataset.gameId;
        const kind = root.dataset.kind;
        const boardData = JSON.parse(root.dataset.board || '{}');
        const board = (window.PlayhouseBoards || {})[kind] || null;
        const $ = (id) => document.getElementById(id);
        const els = {
            position: $('position'), error: $('replay-error'), board: $('board'),
            players: $('players'), moves: $('moves'), moveCount: $('move-count'),
            result: $('game-result'), resultText: $('result-text'),
            first: $('replay-first'), prev: $('replay-prev'), play: $('replay-play'),
            next: $('replay-next'), last: $('replay-last'),
        };
        const replay = {
            data: null,       // the API's answer
            position: 0,      // 0: the start; k: after the k-th event
            playing: false,
            ready: false,
        };
        window.playhouseReplay = replay;
        let timer = null;

        function total() {
            return replay.data ? replay.data.frames.length : 0;
        }

        function players() {
            return replay.data ? replay.data.players : JSON.parse(root.dataset.players || '[]');
        }

        /** What the game page's `state` message would hold at `position` (for the board). */
        function stateAt(position) {
            const data = replay.data;
            const frame = position > 0 ? data.frames[position - 1] : null;
            const end = position === total() && data.result !== null;
            return {
                type: 'state', game: data.game, kind: data.kind, players: data.players,
                seq: frame ? frame.seq : 0,
                status: end ? 'finished' : 'active',
                view: frame ? frame.view : data.start,
                to_move: frame ? frame.to_move : [],
                last: frame ? Object.assign({seq: frame.seq}, frame.last) : null,
                result: end ? data.result : null,
                replay: true,
            };
        }

        function context(state) {
            return {
                me: null,
                players: players(),
                seat: -1,
                myTurn: false,
                finished: state.status === 'finished',
                state: state,
                last: state.last,
                boardData: boardData,
                ui: ui,
                send: () => {},   // read-only: a replay sends nothing
                animate: false,
                spectator: true,
            };
        }

        function describe(frame, position) {
            const last = frame.last;
            const describeMove = board && board.describe && last.move
                ? () => {
                    const state = stateAt(position);
                    return board.describe(state.last, state, context(state));
                }
                : null;
            return eventText(last, describeMove);
        }

        /* -- Rendering -- */

        function renderMoveList() {
            els.moves.textContent = '';
            replay.data.frames.forEach((frame, i) => {
                const li = html('li', 'move', null, els.moves);
                li.value = i + 1;
                li.dataset.seq = String(frame.seq);
                li.dataset.position = String(i + 1);
                const button = html('button', 'move-jump', describe(frame, i + 1), li);
                button.type = 'button';
                button.addEventListener('click', () => {
                    pause();
                    go(i + 1);
                });
            });
            els.moveCount.textContent = '(' + total() + ')';
        }

        function renderPlayers(state) {
            const summaries = board && board.playerInfo
                ? safe(() => board.playerInfo(state.view || {}, context(state))) : null;
            const moving = state.to_move || [];
            els.players.textContent = '';
            players().forEach((name, seat) => {
                const li = html('li', 'player', null, els.players);
                li.dataset.player = name;
                li.classList.toggle('player-moving', moving.includes(name));
                const mark = ui.SEATS[seat] || ui.SEATS[0];
                const badge = html('span', 'player-mark player-mark-' + seat, mark.symbol, li);
                badge.setAttribute('aria-hidden', 'true');
                const who = html('span', 'player-name', name, li);
                if (moving.includes(name)) {
                    html('span', 'player-to-move', 'to move', who);
                }
                if (summaries && summaries[seat]) {
                    html('span', 'player-info', summaries[seat], li);
                }
            });
        }

        function safe(fn) {
            try {
                return fn();
            } catch (e) {
                return null;
            }
        }

        function render() {
            const position = replay.position;
            const count = total();
            const state = stateAt(position);
            if (board) {
                board.render(els.board, state.view || {}, context(state));
            } else {
                els.board.textContent = 'This game cannot be shown yet.';
            }
            renderPlayers(state);
            els.board.dataset.position = String(position);
            const counter = 'move ' + position + ' of ' + count;
            let what = 'Start of the game';
            if (position > 0) {
                what = describe(replay.data.frames[position - 1], position);
            }
            els.position.textContent = '';
            html('span', 'replay-counter', counter, els.position).id = 'counter';
            html('span', 'replay-what', ' — ' + what, els.position);
            for (const li of els.moves.children) {
                const current = Number(li.dataset.position) === position;
                li.classList.toggle('move-current', current);
                const button = li.firstElementChild;
                if (current) {
                    button.setAttribute('aria-current', 'step');
                    li.scrollIntoView({block: 'nearest'});
                } else {
                    button.removeAttribute('aria-current');
                }
            }
            const end = position === count;
            els.result.hidden = !end;
            if (end) {
                els.resultText.textContent = resultText(replay.data.result) || 'Game over.';
            }
            els.first.disabled = position === 0;
            els.prev.disabled = position === 0;
            els.next.disabled = end;
            els.last.disabled = end;
            els.play.disabled = count === 0;
            els.play.textContent = replay.playing ? '⏸ Pause' : '▶ Play';
            els.play.setAttribute('aria-pressed', replay.playing ? 'true' : 'false');
        }

        /* -- Moving through the game -- */

        function go(position) {
            if (!replay.ready) {
                return;
            }
            const next = Math.max(0, Math.min(total(), position));
            if (next === total() && replay.playing) {
                pause(false);
            }
            replay.position = next;
            render();
        }

        function play() {
            if (!replay.ready || replay.playing || total() === 0) {
                return;
            }
            if (replay.position === total()) {
                replay.position = 0;  // from the end: play it all again
            }
            replay.playing = true;
            timer = setInterval(() => go(replay.position + 1), STEP_MS);
            render();
        }

        function pause(redraw) {
            if (timer !== null) {
                clearInterval(timer);
                timer = null;
            }
            replay.playing = false;
            if (redraw !== false && replay.ready) {
                render();
            }
        }

        function toggle() {
            if (replay.playing) {
                pause();
            } else {
                play();
            }
        }

        els.first.addEventListener('click', () => { pause(); go(0); });
        els.prev.addEventListener('click', () => { pause(); go(replay.position - 1); });
        els.next.addEventListener('click', () => { pause(); go(replay.position + 1); });
        els.last.addEventListener('click', () => { pause(); go(total()); });
        els.play.addEventListener('click', toggle);

        document.addEventListener('keydown', (evt) => {
            if (evt.defaultPrevented || evt.altKey || evt.ctrlKey || evt.metaKey) {
                return;
            }
            const target = evt.target;
            const tag = target && target.tagName;
            if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' ||
                    (target && target.isContentEditable)) {
                return;
            }
            const onControl = tag === 'BUTTON' || tag === 'A' ||
                (target && target.getAttribute && target.getAttribute('role') === 'button');
            const actions = {
                ArrowLeft: () => { pause(); go(replay.position - 1); },
                ArrowRight: () => { pause(); go(replay.position + 1); },
                Home: () => { pause(); go(0); },
                End: () => { pause(); go(total()); },
                ' ': toggle,
            };
            const action = actions[evt.key];
            if (!action || (evt.key === ' ' && onControl)) {
                return;  // Space on a button presses that button
            }
            evt.preventDefault();
            action();
        });

        /* -- Loading -- */

        function fail(status, message) {
            const known = FAILURES[status];
            els.error.textContent = (known ? known[0] : message || 'The replay could not be loaded.') + ' ';
            if (known) {
                const link = html('a', 'game-error-link', known[1], els.error);
                link.href = known[2] || '/login?next=' + encodeURIComponent(location.pathname);
            }
            els.error.classList.add('game-error-shown');
            els.position.textContent = 'No replay.';
            for (const button of [els.first, els.prev, els.play, els.next, els.last]) {
                button.disabled = true;
            }
        }

        async function load() {
            let reply;
            let data = null;
            try {
                reply = await fetch('/api/games/' + encodeURIComponent(gameId) + '/replay',
                    {credentials: 'same-origin', headers: {Accept: 'application/json'}});
                data = await reply.json();
            } catch (e) {
                fail(0, 'The server could not be reached; reload to try again.');
                return;
            }
            if (!reply.ok || !data || !Array.isArray(data.frames)) {
                fail(reply.status, data && data.message);
                return;
            }
            replay.data = data;
            replay.ready = true;
            renderMoveList();
            go(0);
        }

        for (const button of [els.first, els.prev, els.play, els.next, els.last]) {
            button.disabled = true;
        }
        load();
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', init);
    } else {
        init();
    }
}());
