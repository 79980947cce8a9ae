/*
 * Connect Four board: 7 columns × 6 rows in SVG; a column is a button ({"column": c}).
 * View (app/games/connect4.py): board[c][r] (row 0 at the bottom) of seat index or
 * null, last [c, r], turn, result (a win carries "line", its [c, r] cells).
 */
(function () {
    'use strict';

    const COLUMNS = 7;
    const ROWS = 6;
    const CELL = 70;
    const R = 27;

    function cx(c) { return c * CELL + CELL / 2; }
    function cy(r) { return (ROWS - 1 - r) * CELL + CELL / 2; }

    /** A disc: seat colour plus a white cross (seat 0) or ring (seat 1). */
    function disc(ui, parent, seat, x, y, extra) {
        const g = ui.svg('g', {class: 'disc disc-' + seat + (extra ? ' ' + extra : '')}, parent);
        ui.svg('circle', {class: 'disc-body', cx: x, cy: y, r: R}, g);
        if (seat === 0) {
            ui.svg('path', {class: 'disc-mark', d: `M${x - 9} ${y - 9}L${x + 9} ${y + 9}M${x + 9} ${y - 9}L${x - 9} ${y + 9}`}, g);
        } else {
            ui.svg('circle', {class: 'disc-mark', cx: x, cy: y, r: 10}, g);
        }
        return g;
    }

    function render(container, view, ctx) {
        const ui = ctx.ui;
        const board = view.board || [];
        const last = Array.isArray(view.last) ? view.last : null;
        const result = view.result || (ctx.state && ctx.state.result) || null;
        const line = result && Array.isArray(result.line) ? result.line : [];
        const onLine = (c, r) => line.some((p) => p[0] === c && p[1] === r);
        const root = ui.svg('svg', {
            viewBox: `-8 ${-CELL - 4} ${COLUMNS * CELL + 16} ${(ROWS + 1) * CELL + 12}`,
            class: 'board-svg c4', role: 'group', 'aria-label': 'Connect Four board',
        });
        ui.svg('rect', {class: 'c4-frame', x: -6, y: -6, width: COLUMNS * CELL + 12,
            height: ROWS * CELL + 12, rx: 14}, root);
        for (let c = 0; c < COLUMNS; c++) {
            const column = board[c] || [];
            const free = column.indexOf(null);
            const full = free === -1 && column.length === ROWS;
            const g = ui.svg('g', {class: 'column' + (full ? ' column-full' : ''), 'data-column': c}, root);
            const count = column.filter((x) => x !== null && x !== undefined).length;
            ui.actionable(g, {
                label: 'Column ' + (c + 1) + (full ? ', full' : ', ' + count + ' of ' + ROWS + ' filled'),
                key: 'column-' + c, x: c, y: 0,
                enabled: ctx.myTurn && !full,
                onActivate: () => ctx.send({column: c}),
            });
            ui.svg('rect', {class: 'column-hit', x: c * CELL, y: -CELL, width: CELL, height: (ROWS + 1) * CELL}, g);
            ui.svg('rect', {class: 'ring', x: c * CELL + 3, y: -3, width: CELL - 6, height: ROWS * CELL + 6, rx: 10}, g);
            for (let r = 0; r < ROWS; r++) {
                ui.svg('circle', {class: 'hole', cx: cx(c), cy: cy(r), r: R + 1}, g);
                const seat = column[r];
                if (seat === 0 || seat === 1) {
                    const isLast = last && last[0] === c && last[1] === r;
                    const classes = [isLast ? 'disc-last' : '', onLine(c, r) ? 'disc-win' : ''].join(' ').trim();
                    const piece = disc(ui, g, seat, cx(c), cy(r), classes);
                    if (isLast && ctx.animate) {
                        ui.svg('animateTransform', {attributeName: 'transform', type: 'translate',
                            from: `0 ${-(cy(r) + CELL / 2)}`, to: '0 0', dur: '0.32s', calcMode: 'spline',
                            keyTimes: '0;1', keySplines: '0.5 0 1 1', fill: 'freeze'}, piece);
                    }
                }
            }
            if (ctx.myTurn && !full && ctx.seat >= 0) {
                disc(ui, g, ctx.seat, cx(c), -CELL / 2, 'ghost');
            }
        }
        container.replaceChildren(root);
    }

    function describe(last) {
        const c = last.move && last.move.column;
        return typeof c === 'number' ? 'dropped in column ' + (c + 1) : null;
    }

    window.PlayhouseBoards = window.PlayhouseBoards || {};
    window.PlayhouseBoards.connect4 = {render, describe};
}());
