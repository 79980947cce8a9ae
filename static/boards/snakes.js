/*
 * Snakes and Ladders board: the classic 10×10 board in SVG, numbered boustrophedon
 * from the bottom left; snakes and ladders come from the rules (data-board on the
 * page), the tokens from the view. The only move is the Roll button ({"roll": true}).
 * View (app/games/snakes.py): positions per seat (0: not on the board yet), turn,
 * sixes (6s in a row by the player to move), history (last rolls: player, roll,
 * from, to, via), result.
 */
(function () {
    'use strict';

    const CELL = 50;
    const PIPS = {
        1: [[0, 0]], 2: [[-1, -1], [1, 1]], 3: [[-1, -1], [0, 0], [1, 1]],
        4: [[-1, -1], [1, -1], [-1, 1], [1, 1]], 5: [[-1, -1], [1, -1], [0, 0], [-1, 1], [1, 1]],
        6: [[-1, -1], [1, -1], [-1, 0], [1, 0], [-1, 1], [1, 1]],
    };

    /** Centre of square n (1-100); 0 is the start area below the board. */
    function centre(n) {
        if (n <= 0) {
            return [-CELL / 2 + 10, 10 * CELL + 28];
        }
        const row = Math.floor((n - 1) / 10);
        const idx = (n - 1) % 10;
        const col = row % 2 === 0 ? idx : 9 - idx;
        return [col * CELL + CELL / 2, (9 - row) * CELL + CELL / 2];
    }

    function drawLadder(ui, parent, foot, top) {
        const [x1, y1] = centre(foot);
        const [x2, y2] = centre(top);
        const len = Math.hypot(x2 - x1, y2 - y1);
        const nx = -(y2 - y1) / len * 7;
        const ny = (x2 - x1) / len * 7;
        const g = ui.svg('g', {class: 'ladder'}, parent);
        ui.svg('title', {}, g).textContent = 'Ladder from ' + foot + ' to ' + top;
        ui.svg('line', {class: 'rail', x1: x1 + nx, y1: y1 + ny, x2: x2 + nx, y2: y2 + ny}, g);
        ui.svg('line', {class: 'rail', x1: x1 - nx, y1: y1 - ny, x2: x2 - nx, y2: y2 - ny}, g);
        const rungs = Math.max(2, Math.floor(len / 16));
        for (let i = 1; i < rungs; i++) {
            const t = i / rungs;
            const x = x1 + (x2 - x1) * t;
            const y = y1 + (y2 - y1) * t;
            ui.svg('line', {class: 'rung', x1: x + nx, y1: y + ny, x2: x - nx, y2: y - ny}, g);
        }
    }

    function drawSnake(ui, parent, head, tail, index) {
        const [x1, y1] = centre(head);
        const [x2, y2] = centre(tail);
        const len = Math.hypot(x2 - x1, y2 - y1);
        const nx = -(y2 - y1) / len;
        const ny = (x2 - x1) / len;
        const wave = Math.min(28, len / 5) * (index % 2 ? 1 : -1);
        const a = [x1 + (x2 - x1) / 3 + nx * wave, y1 + (y2 - y1) / 3 + ny * wave];
        const b = [x1 + 2 * (x2 - x1) / 3 - nx * wave, y1 + 2 * (y2 - y1) / 3 - ny * wave];
        const g = ui.svg('g', {class: 'snake snake-' + (index % 3)}, parent);
        ui.svg('title', {}, g).textContent = 'Snake from ' + head + ' down to ' + tail;
        const d = `M${x1} ${y1}C${a[0]} ${a[1]} ${b[0]} ${b[1]} ${x2} ${y2}`;
        ui.svg('path', {class: 'snake-body', d: d}, g);
        ui.svg('path', {class: 'snake-stripe', d: d}, g);
        ui.svg('circle', {class: 'snake-head', cx: x1, cy: y1, r: 8}, g);
        ui.svg('circle', {class: 'snake-eye', cx: x1 - 3, cy: y1 - 2, r: 1.6}, g);
        ui.svg('circle', {class: 'snake-eye', cx: x1 + 3, cy: y1 - 2, r: 1.6}, g);
    }

    function drawDie(ui, parent, value) {
        const svg = ui.svg('svg', {viewBox: '-24 -24 48 48', class: 'die', role: 'img',
            'aria-label': value ? 'Die showing ' + value : 'Die not rolled yet'}, parent);
        ui.svg('rect', {class: 'die-face', x: -21, y: -21, width: 42, height: 42, rx: 8}, svg);
        for (const [px, py] of (PIPS[value] || [])) {
            ui.svg('circle', {class: 'die-pip', cx: px * 10, cy: py * 10, r: 4}, svg);
        }
        return svg;
    }

    function rollText(entry) {
        let text = entry.player + ' rolled ' + entry.roll;
        if (entry.from === entry.to) {
            return text + (entry.from + entry.roll > 100 ? ' — needs an exact roll, stays on ' + entry.to : '');
        }
        text += ': ' + entry.from + ' → ' + entry.to;
        if (entry.via === 'ladder') {
            text += ', up a ladder';
        } else if (entry.via === 'snake') {
            text += ', down a snake';
        }
        return text;
    }

    function render(container, view, ctx) {
        const ui = ctx.ui;
        const data = ctx.boardData || {};
        const positions = view.positions || [];
        const history = view.history || [];
        const lastRoll = history.length ? history[history.length - 1] : null;
        const summary = ctx.players.map((p, i) => p + ' on ' + (positions[i] ? 'square ' + positions[i] : 'the start'));
        const root = ui.svg('svg', {
            viewBox: `${-CELL - 4} -4 ${11 * CELL + 8} ${10 * CELL + 58}`, class: 'board-svg snakes',
            role: 'img', 'aria-label': 'Snakes and Ladders board: ' + summary.join(', '),
        });
        const squares = ui.svg('g', {class: 'squares'}, root);
        for (let n = 1; n <= 100; n++) {
            const [x, y] = centre(n);
            const row = Math.floor((n - 1) / 10);
            const col = Math.floor(x / CELL);
            ui.svg('rect', {class: 'square square-' + ((row + col) % 2) + (n === 100 ? ' square-goal' : ''),
                x: x - CELL / 2, y: y - CELL / 2, width: CELL, height: CELL}, squares);
            const t = ui.svg('text', {class: 'square-number', x: x - CELL / 2 + 4, y: y - CELL / 2 + 13}, squares);
            t.textContent = String(n);
        }
        const start = ui.svg('g', {class: 'start'}, root);
        ui.svg('rect', {class: 'start-area', x: -CELL, y: 10 * CELL + 6, width: CELL * 2.2, height: 44, rx: 8}, start);
        ui.svg('text', {class: 'start-label', x: 8, y: 10 * CELL + 33}, start).textContent = 'Start';
        const things = ui.svg('g', {class: 'things'}, root);
        Object.entries(data.ladders || {}).forEach(([foot, top]) => drawLadder(ui, things, Number(foot), top));
        Object.entries(data.snakes || {}).forEach(([head, tail], i) => drawSnake(ui, things, Number(head), tail, i));
        const tokens = ui.svg('g', {class: 'tokens'}, root);
        positions.forEach((square, seat) => {
            const [x0, y0] = centre(square);
            const x = x0 + (seat === 0 ? -9 : 9);
            const y = y0 + (seat === 0 ? -6 : 8);
            const g = ui.svg('g', {class: 'token token-' + seat, 'data-seat': seat, 'data-square': square}, tokens);
            ui.svg('circle', {class: 'token-body', cx: x, cy: y, r: 12}, g);
            const label = ui.svg('text', {class: 'token-label', x: x, y: y + 5, 'text-anchor': 'middle'}, g);
            label.textContent = (ctx.players[seat] || '?')[0].toUpperCase();
            ui.svg('title', {}, g).textContent = ctx.players[seat] + ' on ' + (square || 'the start');
            if (ctx.animate && lastRoll && lastRoll.player === ctx.players[seat] && lastRoll.from !== square) {
                const [fx, fy] = centre(lastRoll.from);
                ui.svg('animateTransform', {attributeName: 'transform', type: 'translate',
                    from: `${fx - x0} ${fy - y0}`, to: '0 0', dur: '0.45s', fill: 'freeze'}, g);
            }
        });

        const controls = ui.html('div', 'snakes-controls');
        const roll = ui.html('button', 'button roll-button', 'Roll the die', controls);
        roll.type = 'button';
        roll.id = 'roll';
        roll.dataset.focusKey = 'roll';
        roll.disabled = !ctx.myTurn;
        roll.addEventListener('click', () => ctx.send({roll: true}));
        const dice = ui.html('div', 'dice', null, controls);
        drawDie(ui, dice, lastRoll ? lastRoll.roll : 0);
        const said = ui.html('p', 'roll-text', lastRoll ? rollText(lastRoll) : 'No rolls yet.', dice);
        said.id = 'last-roll';
        if (!ctx.finished && view.sixes > 0 && lastRoll && lastRoll.roll === 6) {
            ui.html('p', 'roll-again', 'A six — ' + lastRoll.player + ' rolls again!', controls);
        }
        container.replaceChildren(root, controls);
    }

    function describe(last, state) {
        const history = (state.view && state.view.history) || [];
        const entry = history[history.length - 1];
        if (!entry || entry.player !== last.player) {
            return 'rolled';
        }
        return rollText(entry).slice(entry.player.length + 1);
    }

    function playerInfo(view) {
        return (view.positions || []).map((n) => (n ? 'on square ' + n : 'at the start'));
    }

    window.PlayhouseBoards = window.PlayhouseBoards || {};
    window.PlayhouseBoards.snakes = {render, describe, playerInfo};
}());
