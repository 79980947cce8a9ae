/*
 * Bingo board: my private 5×5 board in SVG; an uncalled number is a button
 * ({"number": n}). The opponent's board appears only once the game is over (the
 * view reveals it then). View (app/games/bingo.py) while playing: board (25, row-major),
 * marked (25 booleans), you (my seat), called (in order), lines (per seat), turn;
 * when finished: boards (both), called, lines, result. A spectator (ctx.seat -1, the
 * replay page) sees no board until the game is over, then both.
 */
(function () {
    'use strict';

    const SIZE = 5;
    const CELL = 64;
    const TARGET = 5;
    const LINES = [];
    for (let r = 0; r < SIZE; r++) { LINES.push([0, 1, 2, 3, 4].map((c) => r * SIZE + c)); }
    for (let c = 0; c < SIZE; c++) { LINES.push([0, 1, 2, 3, 4].map((r) => r * SIZE + c)); }
    LINES.push([0, 6, 12, 18, 24], [4, 8, 12, 16, 20]);

    function drawBoard(ui, numbers, called, opts) {
        const calledSet = new Set(called);
        const marked = numbers.map((n) => calledSet.has(n));
        const lastCalled = called.length ? called[called.length - 1] : null;
        const done = LINES.filter((line) => line.every((i) => marked[i]));
        const root = ui.svg('svg', {
            viewBox: `-4 -48 ${SIZE * CELL + 8} ${SIZE * CELL + 52}`,
            class: 'board-svg bingo' + (opts.small ? ' bingo-small' : ''), role: 'group',
            'aria-label': opts.label,
        });
        'BINGO'.split('').forEach((letter, i) => {
            const t = ui.svg('text', {class: 'bingo-letter' + (i < done.length ? ' bingo-letter-lit' : ''),
                x: i * CELL + CELL / 2, y: -14, 'text-anchor': 'middle'}, root);
            t.textContent = letter;
        });
        numbers.forEach((n, i) => {
            const r = Math.floor(i / SIZE);
            const c = i % SIZE;
            const x = c * CELL;
            const y = r * CELL;
            const g = ui.svg('g', {class: 'bingo-cell' + (marked[i] ? ' bingo-marked' : '') +
                (n === lastCalled ? ' bingo-last' : ''), 'data-number': n}, root);
            if (opts.interactive) {
                ui.actionable(g, {
                    label: 'Number ' + n + (marked[i] ? ', called' : ''),
                    key: 'number-' + n, x: c, y: r,
                    enabled: opts.enabled && !marked[i],
                    onActivate: () => opts.send({number: n}),
                });
            }
            ui.svg('rect', {class: 'bingo-bg', x: x + 3, y: y + 3, width: CELL - 6, height: CELL - 6, rx: 8}, g);
            ui.svg('rect', {class: 'ring', x: x + 5, y: y + 5, width: CELL - 10, height: CELL - 10, rx: 7}, g);
            if (marked[i]) {
                ui.svg('circle', {class: 'bingo-stamp', cx: x + CELL / 2, cy: y + CELL / 2, r: 22}, g);
            }
            const t = ui.svg('text', {class: 'bingo-number', x: x + CELL / 2, y: y + CELL / 2 + 7,
                'text-anchor': 'middle'}, g);
            t.textContent = String(n);
        });
        for (const line of done) {
            const a = line[0];
            const b = line[line.length - 1];
            const pt = (i) => [(i % SIZE) * CELL + CELL / 2, Math.floor(i / SIZE) * CELL + CELL / 2];
            const [x1, y1] = pt(a);
            const [x2, y2] = pt(b);
            ui.svg('line', {class: 'bingo-strike', x1: x1, y1: y1, x2: x2, y2: y2}, root);
        }
        return root;
    }

    function render(container, view, ctx) {
        const ui = ctx.ui;
        const seat = typeof view.you === 'number' ? view.you : ctx.seat;
        const called = view.called || [];
        const mine = view.board || (view.boards ? view.boards[seat] : null) || [];
        const wrap = ui.html('div', 'bingo-wrap');
        const boards = ui.html('div', 'bingo-boards', null, wrap);
        if (seat < 0) {
            // A spectator (a replay): the boards are private until the game is over.
            (view.boards || []).forEach((numbers, i) => {
                const box = ui.html('figure', 'bingo-figure', null, boards);
                box.appendChild(drawBoard(ui, numbers || [], called, {
                    label: ctx.players[i] + "'s Bingo board",
                }));
                ui.html('figcaption', null, ctx.players[i] + "'s board", box);
            });
            if (!view.boards) {
                ui.html('p', 'empty', 'The boards are private until the game is over.', boards);
            }
        } else {
            const myBox = ui.html('figure', 'bingo-figure', null, boards);
            myBox.appendChild(drawBoard(ui, mine, called, {
                label: 'Your Bingo board', interactive: true, enabled: ctx.myTurn, send: ctx.send,
            }));
            ui.html('figcaption', null, 'Your board — pick a number to call it', myBox);
        }
        if (view.boards && seat >= 0) {
            const other = 1 - seat;
            const theirBox = ui.html('figure', 'bingo-figure bingo-theirs', null, boards);
            theirBox.id = 'bingo-opponent';
            theirBox.appendChild(drawBoard(ui, view.boards[other] || [], called, {
                label: ctx.players[other] + "'s Bingo board", small: true,
            }));
            ui.html('figcaption', null, ctx.players[other] + "'s board", theirBox);
        }
        const calledBox = ui.html('div', 'bingo-called', null, wrap);
        ui.html('h3', null, 'Called numbers (' + called.length + ' of 25)', calledBox);
        const list = ui.html('ol', 'chips', null, calledBox);
        list.id = 'called';
        called.forEach((n, i) => {
            const who = ctx.players[i % 2];
            const chip = ui.html('li', 'chip chip-' + (i % 2) + (i === called.length - 1 ? ' chip-last' : ''),
                String(n), list);
            chip.title = 'called by ' + who;
        });
        if (!called.length) {
            ui.html('p', 'empty', 'Nobody has called a number yet.', calledBox);
        }
        container.replaceChildren(wrap);
    }

    function describe(last) {
        const n = last.move && last.move.number;
        return typeof n === 'number' ? 'called ' + n : null;
    }

    function playerInfo(view) {
        return (view.lines || []).map((n) => n + ' of ' + TARGET + ' lines');
    }

    window.PlayhouseBoards = window.PlayhouseBoards || {};
    window.PlayhouseBoards.bingo = {render, describe, playerInfo};
}());
