/*
 * Tic-tac-toe board: 3×3 SVG; a cell is a button ({"cell": i}). X is the first seat.
 * View (app/games/tictactoe.py): board[9] of seat index or null, turn, result.
 */
(function () {
    'use strict';

    const LINES = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [0, 3, 6], [1, 4, 7], [2, 5, 8], [0, 4, 8], [2, 4, 6]];
    const SIZE = 100;
    const NAMES = ['X', 'O'];

    function winningLine(cells) {
        for (const line of LINES) {
            const seat = cells[line[0]];
            if (seat !== null && seat !== undefined && line.every((i) => cells[i] === seat)) {
                return line;
            }
        }
        return null;
    }

    function drawMark(ui, group, seat, x, y, animate) {
        const cls = 'mark mark-' + seat + (animate ? ' mark-new' : '');
        if (seat === 0) {
            const g = ui.svg('g', {class: cls}, group);
            ui.svg('line', {x1: x + 26, y1: y + 26, x2: x + 74, y2: y + 74}, g);
            ui.svg('line', {x1: x + 74, y1: y + 26, x2: x + 26, y2: y + 74}, g);
        } else {
            ui.svg('circle', {class: cls, cx: x + 50, cy: y + 50, r: 25}, group);
        }
    }

    function render(container, view, ctx) {
        const ui = ctx.ui;
        const cells = view.board || [];
        const win = ctx.finished ? winningLine(cells) : null;
        const last = ctx.last && ctx.last.type === 'move' && ctx.last.move ? ctx.last.move.cell : null;
        const root = ui.svg('svg', {
            viewBox: '-6 -6 312 312', class: 'board-svg ttt', role: 'group',
            'aria-label': 'Tic-tac-toe board',
        });
        for (let i = 0; i < 9; i++) {
            const row = Math.floor(i / 3);
            const col = i % 3;
            const x = col * SIZE;
            const y = row * SIZE;
            const seat = cells[i];
            const taken = seat !== null && seat !== undefined;
            const owner = taken ? ctx.players[seat] : null;
            const g = ui.svg('g', {class: 'cell' + (taken ? ' cell-taken' : ''), 'data-cell': i}, root);
            ui.actionable(g, {
                label: 'Cell ' + (i + 1) + ', row ' + (row + 1) + ' column ' + (col + 1) + ', ' +
                    (taken ? NAMES[seat] + ' (' + owner + ')' : 'empty'),
                key: 'cell-' + i, x: col, y: row,
                enabled: ctx.myTurn && !taken,
                onActivate: () => ctx.send({cell: i}),
            });
            ui.svg('rect', {class: 'cell-bg' + (win && win.includes(i) ? ' cell-win' : '') +
                (last === i ? ' cell-last' : ''),
                x: x + 3, y: y + 3, width: SIZE - 6, height: SIZE - 6, rx: 10}, g);
            ui.svg('rect', {class: 'ring', x: x + 6, y: y + 6, width: SIZE - 12, height: SIZE - 12, rx: 8}, g);
            if (taken) {
                drawMark(ui, g, seat, x, y, ctx.animate && last === i);
            } else if (ctx.myTurn && ctx.seat >= 0) {
                const ghost = ui.svg('g', {class: 'ghost'}, g);
                drawMark(ui, ghost, ctx.seat, x, y, false);
            }
        }
        container.replaceChildren(root);
    }

    function describe(last, state) {
        const cell = last.move && last.move.cell;
        if (typeof cell !== 'number') {
            return null;
        }
        const seat = (state.view && state.view.board) ? state.view.board[cell] : null;
        const mark = seat === 0 || seat === 1 ? NAMES[seat] + ' ' : '';
        return 'played ' + mark + 'at row ' + (Math.floor(cell / 3) + 1) + ', column ' + (cell % 3 + 1);
    }

    function playerInfo(view, ctx) {
        return ctx.players.map((_, seat) => 'plays ' + NAMES[seat]);
    }

    window.PlayhouseBoards = window.PlayhouseBoards || {};
    window.PlayhouseBoards.tictactoe = {render, describe, playerInfo};
}());
