/*
 * Rock-paper-scissors: three choice buttons ({"choice": ...}), the score (first to
 * three), who has chosen this round, my pending choice and every round so far.
 * View (app/games/rps.py): players, rounds [{choices: [seat0, seat1], winner}],
 * score per seat, chosen per seat, your_choice (mine, this round), result.
 */
(function () {
    'use strict';

    const CHOICES = [
        {key: 'rock', label: 'Rock'},
        {key: 'paper', label: 'Paper'},
        {key: 'scissors', label: 'Scissors'},
    ];
    const LABEL = {rock: 'Rock', paper: 'Paper', scissors: 'Scissors'};

    /** A small drawing of a choice (SVG: no emoji font needed). */
    function icon(ui, choice, parent, size) {
        const root = ui.svg('svg', {viewBox: '0 0 48 48', class: 'rps-icon rps-icon-' + choice,
            width: size, height: size, 'aria-hidden': 'true', focusable: 'false'}, parent);
        if (choice === 'rock') {
            ui.svg('path', {class: 'rock-body', d: 'M9 30 L12 17 L22 9 L35 12 L41 24 L37 36 L24 41 L13 38 Z'}, root);
            ui.svg('path', {class: 'rock-crack', d: 'M22 9 L24 20 L35 25 M24 20 L17 29'}, root);
        } else if (choice === 'paper') {
            ui.svg('path', {class: 'paper-body', d: 'M12 6 H30 L38 14 V42 H12 Z'}, root);
            ui.svg('path', {class: 'paper-fold', d: 'M30 6 V14 H38'}, root);
            ui.svg('path', {class: 'paper-lines', d: 'M17 21 H33 M17 27 H33 M17 33 H28'}, root);
        } else {
            ui.svg('path', {class: 'blade', d: 'M21 27 L38 6 L40 9 L25 30 Z'}, root);
            ui.svg('path', {class: 'blade', d: 'M27 27 L10 6 L8 9 L23 30 Z'}, root);
            ui.svg('circle', {class: 'handle', cx: 15, cy: 36, r: 6}, root);
            ui.svg('circle', {class: 'handle', cx: 33, cy: 36, r: 6}, root);
            ui.svg('circle', {class: 'pivot', cx: 24, cy: 28.5, r: 1.8}, root);
        }
        return root;
    }

    function render(container, view, ctx) {
        const ui = ctx.ui;
        const players = ctx.players;
        const score = view.score || [0, 0];
        const chosen = view.chosen || [false, false];
        const rounds = view.rounds || [];
        const mine = view.your_choice || null;
        const wrap = ui.html('div', 'rps');

        const board = ui.html('div', 'rps-score', null, wrap);
        board.setAttribute('aria-label', 'Score: ' + players.map((p, i) => p + ' ' + (score[i] || 0)).join(', ') +
            '. First to three round wins.');
        players.forEach((p, i) => {
            const side = ui.html('div', 'rps-side rps-side-' + i, null, board);
            ui.html('span', 'rps-name', p + (p === ctx.me ? ' (you)' : ''), side);
            ui.html('span', 'rps-points', String(score[i] || 0), side);
            const status = ctx.finished ? '' : (chosen[i] ? 'has chosen ✓' : 'choosing…');
            ui.html('span', 'rps-chosen' + (chosen[i] ? ' rps-chosen-yes' : ''), status, side);
            if (i === 0) {
                ui.html('span', 'rps-dash', '–', board).setAttribute('aria-hidden', 'true');
            }
        });
        ui.html('p', 'rps-goal hint', 'Best of five: first to three round wins.', wrap);

        const last = rounds.length ? rounds[rounds.length - 1] : null;
        if (last) {
            const reveal = ui.html('p', 'rps-reveal', null, wrap);
            reveal.id = 'rps-last-round';
            const [a, b] = last.choices;
            ui.html('span', null, 'Round ' + rounds.length + ': ' + players[0] + ' ', reveal);
            icon(ui, a, reveal, 26);
            ui.html('b', null, ' ' + LABEL[a] + ' vs ' + LABEL[b] + ' ', reveal);
            icon(ui, b, reveal, 26);
            ui.html('span', null, ' ' + players[1] + ' — ' +
                (last.winner ? last.winner + ' wins the round' : 'a tie'), reveal);
        }

        const buttons = ui.html('div', 'rps-choices', null, wrap);
        buttons.setAttribute('role', 'group');
        buttons.setAttribute('aria-label', 'Your choice');
        for (const choice of CHOICES) {
            const button = ui.html('button', 'rps-choice' + (mine === choice.key ? ' rps-choice-picked' : ''),
                null, buttons);
            button.type = 'button';
            button.dataset.choice = choice.key;
            button.dataset.focusKey = 'choice-' + choice.key;
            button.setAttribute('aria-pressed', mine === choice.key ? 'true' : 'false');
            button.disabled = !ctx.myTurn;
            icon(ui, choice.key, button, 56);
            ui.html('span', 'rps-label', choice.label, button);
            button.addEventListener('click', () => ctx.send({choice: choice.key}));
        }
        const other = players.find((p) => p !== ctx.me);
        const otherSeat = players.indexOf(other);
        let prompt = '';
        if (ctx.finished) {
            prompt = 'The game is over.';
        } else if (mine) {
            prompt = 'You chose ' + LABEL[mine] + (chosen[otherSeat] ? '.' : ' — waiting for ' + other + '.');
        } else {
            prompt = 'Choose rock, paper or scissors' + (chosen[otherSeat] ? ' — ' + other + ' has chosen.' : '.');
        }
        const p = ui.html('p', 'rps-prompt', prompt, wrap);
        p.id = 'rps-prompt';

        if (rounds.length) {
            const table = ui.html('table', 'rps-rounds', null, wrap);
            table.id = 'rps-rounds';
            ui.html('caption', null, 'Rounds', table);
            const head = ui.html('tr', null, null, ui.html('thead', null, null, table));
            for (const title of ['#', players[0], players[1], 'Winner']) {
                ui.html('th', null, title, head).setAttribute('scope', 'col');
            }
            const body = ui.html('tbody', null, null, table);
            rounds.forEach((round, i) => {
                const tr = ui.html('tr', null, null, body);
                ui.html('td', null, String(i + 1), tr);
                for (const c of round.choices) {
                    const td = ui.html('td', null, null, tr);
                    icon(ui, c, td, 20);
                    ui.html('span', null, ' ' + LABEL[c], td);
                }
                ui.html('td', null, round.winner || 'tie', tr);
            });
        }
        container.replaceChildren(wrap);
    }

    function describe(last, state) {
        if (last.move && last.move.choice) {
            return 'chose ' + last.move.choice;
        }
        const view = state.view || {};
        const rounds = view.rounds || [];
        const chosen = view.chosen || [];
        if (rounds.length && !chosen.some(Boolean)) {
            const round = rounds[rounds.length - 1];
            return 'chose — round ' + rounds.length + ': ' + round.choices.map((c) => LABEL[c]).join(' vs ') +
                ', ' + (round.winner ? round.winner + ' wins' : 'a tie');
        }
        return 'made a choice';
    }

    function playerInfo(view) {
        return (view.score || []).map((n) => n + (n === 1 ? ' round won' : ' rounds won'));
    }

    window.PlayhouseBoards = window.PlayhouseBoards || {};
    window.PlayhouseBoards.rps = {render, describe, playerInfo};
}());
