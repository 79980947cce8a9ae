/*
 * Playhouse challenges: the parts of the challenge flow shared by the lobby and
 * the guild page. `window.PlayhouseChallenges` offers
 *
 *   util: {el, same, post, clock, feedback, fillGameSelect}  small DOM / HTTP helpers
 *                                      (text only, never markup)
 *
 * fillGameSelect(select, catalogue): the two-player games as options, keeping the choice.
 * feedback(errorEl, newsEl) → {error(text), clearError(), news(text)}: a page's
 * role="alert" error line (hidden again after 15 s) and status line (after 10 s).
 *   board(options)                         the "Challenges for you" / "Your challenges" lists
 *
 * board({incoming, outgoing, me, title, skew, error, clearError, news, go}):
 *   incoming, outgoing   <ul> elements the rows go into
 *   me()                 the signed-in username
 *   title(kind)          a game's title
 *   skew()               server clock minus ours, in ms (0 when unknown)
 *   error(text), clearError(), news(text)   feedback
 *   go(url)              navigate to a started game
 * returns {entries, add, remove, settled, sync, send, handle, tick}:
 *   add(c) / remove(id)  a pending challenge (ignored when not mine or expired)
 *   settled(c, quiet)    a challenge left "pending": drop it and say what happened
 *   sync(list)           make the lists exactly the open challenges of a snapshot
 *   send(to, kind)       POST /api/challenges; resolves to true when sent
 *   handle(msg, replayed)  a lobby user-channel message (challenge, challenge_update,
 *                        game_started); returns true when it was one
 * Countdowns tick once a second; an expired challenge disappears.
 *
 * Loaded with `defer` before the page script that uses it. No innerHTML.
 */
(function () {
    'use strict';

    const TICK_MS = 1000;

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

    function board(options) {
        const entries = new Map();  // id -> {challenge, li, countdown}
        const title = options.title;
        const me = options.me;
        const skew = options.skew || (() => 0);

        function row(c, incoming) {
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
                button.setAttribute('aria-label', label + ' the ' + title(c.game) + ' challenge '
                    + (incoming ? 'from ' + c.from : 'to ' + c.to));
                button.addEventListener('click', () => answer(c, action, li));
                actions.appendChild(button);
            }
            li.appendChild(text);
            li.appendChild(countdown);
            li.appendChild(actions);
            return {li: li, countdown: countdown};
        }

        function remaining(c) {
            return Date.parse(c.expires_at) - (Date.now() + skew());
        }

        function add(c) {
            if (!c || typeof c.id !== 'string' || c.status !== 'pending') {
                return;
            }
            const incoming = same(c.to, me());
            if (!incoming && !same(c.from, me())) {
                return;
            }
            if (entries.has(c.id) || remaining(c) <= 0) {
                return;
            }
            const made = row(c, incoming);
            entries.set(c.id, {challenge: c, li: made.li, countdown: made.countdown});
            const list = incoming ? options.incoming : options.outgoing;
            const older = [...list.children].find((li) => li.dataset.created < c.created_at);
            list.insertBefore(made.li, older || null);
            tickOne(entries.get(c.id));
        }

        function remove(id) {
            const entry = entries.get(id);
            if (!entry) {
                return;
            }
            entries.delete(id);
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

        function tickOne(entry) {
            const left = remaining(entry.challenge);
            if (left <= 0) {
                remove(entry.challenge.id);
                return;
            }
            entry.countdown.textContent = clock(left);
            entry.countdown.classList.toggle('countdown-low', left < 10000);
        }

        function tick() {
            for (const entry of [...entries.values()]) {
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
                    options.clearError();
                    if (reply.data.type === 'game_started') {
                        options.go(reply.data.url);
                    } else {
                        settled(reply.data, false);
                    }
                    return;
                }
                options.error(reply.data.message || 'That did not work (' + reply.status + ').');
                if (['expired', 'not_pending', 'not_found'].includes(reply.data.error)) {
                    remove(c.id);
                    return;
                }
            } catch (e) {
                options.error('Cannot reach the server. Try again.');
            }
            for (const b of li.querySelectorAll('button')) {
                b.disabled = false;
            }
        }

        function settled(c, quiet) {
            remove(c.id);
            if (quiet) {
                return;
            }
            const game = title(c.game);
            const mine = same(c.from, me());
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
                options.news(text);
            }
        }

        function sync(listed) {
            const ids = new Set(listed.map((c) => c.id));
            for (const id of [...entries.keys()]) {
                if (!ids.has(id)) {
                    remove(id);
                }
            }
            listed.forEach(add);
        }

        async function send(to, kind) {
            try {
                const reply = await post('/api/challenges', {to: to, game: kind});
                if (!reply.ok) {
                    options.error(reply.data.message || 'The challenge was refused (' + reply.status + ').');
                    return false;
                }
                options.clearError();
                add(reply.data);
                options.news('Challenge sent to ' + reply.data.to + '.');
                return true;
            } catch (e) {
                options.error('Cannot reach the server. Try again.');
                return false;
            }
        }

        function handle(msg, replayed) {
            if (msg.type === 'challenge') {
                add(msg);
            } else if (msg.type === 'challenge_update') {
                settled(msg, replayed);
            } else if (msg.type === 'game_started') {
                options.go(msg.url);
            } else {
                return false;
            }
            return true;
        }

        setInterval(tick, TICK_MS);
        return {
            entries: entries,
            add: add,
            remove: remove,
            settled: settled,
            sync: sync,
            send: send,
            handle: handle,
            tick: tick,
        };
    }

    function fillGameSelect(select, games) {
        const chosen = select.value;
        const twoPlayer = games.filter((g) => g.min_players <= 2 && 2 <= g.max_players);
        select.replaceChildren(...twoPlayer.map((game) => {
            const option = el('option', null, game.title);
            option.value = game.kind;
            return option;
        }));
        if (chosen && twoPlayer.some((g) => g.kind === chosen)) {
            select.value = chosen;
        }
    }

    const NEWS_MS = 10000;
    const ERROR_MS = 15000;

    function feedback(errorEl, newsEl) {
        let errorTimer = null;
        let newsTimer = null;

        function clearError() {
            errorEl.hidden = true;
            errorEl.textContent = '';
        }

        return {
            error(message) {
                errorEl.textContent = message || 'Something went wrong.';
                errorEl.hidden = false;
                clearTimeout(errorTimer);
                errorTimer = setTimeout(clearError, ERROR_MS);
            },
            clearError: clearError,
            news(text) {
                newsEl.textContent = text;
                newsEl.hidden = false;
                clearTimeout(newsTimer);
                newsTimer = setTimeout(() => { newsEl.hidden = true; }, NEWS_MS);
            },
        };
    }

    window.PlayhouseChallenges = {
        util: {
            el: el, same: same, post: post, clock: clock, feedback: feedback,
            fillGameSelect: fillGameSelect,
        },
        board: board,
    };
}());
