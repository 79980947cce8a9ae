/*
 * Dots and Boxes board: 5×5 dots in SVG; every undrawn line is a button
 * ({"line": "h"|"v", "row", "col"}). View (app/games/dots.py): h[r][c] (r 0-4, c 0-3)
 * joins dots (r, c)-(r, c+1); v[r][c] (r 0-3, c 0-4) joins (r, c)-(r+1, c); each holds
 * the seat that drew it or null. owners[r][c] is the seat that closed box (r, c),
 * scores the boxes per seat, last the latest line.
 */
(function () {
    'use strict';

    const BOXES = 4;
    const GAP = 80;
    const NAMES = {h: 'Horizontal', v: 'Vertical'};

    function initial(name, seat, players) {
        const letters = players.map((p) => (p || '?')[0].toUpperCase());
        return letters[0] === letters[1] ? String(seat + 1) : letters[seat];
    }

    function render(container, view, ctx) {
        const ui = ctx.ui;
        const h = view.h || [];
        const v = view.v || [];
        const owners = view.owners || [];
        const last = view.last || null;
        const root = ui.svg('svg', {
            viewBox: `-30 -30 ${BOXES * GAP + 60} ${BOXES * GAP + 60}`,
            class: 'board-svg dots', role: 'group', 'aria-label': 'Dots and Boxes board',
        });
        const boxes = ui.svg('g', {class: 'boxes'}, root);
        for (let r = 0; r < BOXES; r++) {
            for (let c = 0; c < BOXES; c++) {
                const seat = owners[r] ? owners[r][c] : null;
                if (seat !== 0 && seat !== 1) {
                    continue;
                }
                const g = ui.svg('g', {class: 'box box-' + seat, 'data-box': r + ',' + c}, boxes);
                ui.svg('rect', {x: c * GAP + 6, y: r * GAP + 6, width: GAP - 12, height: GAP - 12, rx: 6}, g);
                const t = ui.svg('text', {x: c * GAP + GAP / 2, y: r * GAP + GAP / 2 + 10, 'text-anchor': 'middle'}, g);
                t.textContent = initial(ctx.players[seat], seat, ctx.players);
                ui.svg('title', {}, g).textContent = 'Box of ' + ctx.players[seat];
            }
        }
        const lines = ui.svg('g', {class: 'lines'}, root);
        for (const kind of ['h', 'v']) {
            const grid = kind === 'h' ? h : v;
            const rows = kind === 'h' ? BOXES + 1 : BOXES;
            const cols = kind === 'h' ? BOXES : BOXES + 1;
            for (let r = 0; r < rows; r++) {
                for (let c = 0; c < cols; c++) {
                    const seat = grid[r] ? grid[r][c] : null;
                    const drawn = seat === 0 || seat === 1;
                    const x1 = c * GAP;
                    const y1 = r * GAP;
                    const x2 = kind === 'h' ? x1 + GAP : x1;
                    const y2 = kind === 'h' ? y1 : y1 + GAP;
                    const isLast = last && last.line === kind && last.row === r && last.col === c;
                    const g = ui.svg('g', {
                        class: 'edge edge-' + kind + (drawn ? ' edge-drawn edge-' + seat : ' edge-free') +
                            (isLast ? ' edge-last' : ''),
                        'data-line': kind, 'data-row': r, 'data-col': c,
                    }, lines);
                    ui.actionable(g, {
                        label: NAMES[kind] + ' line row ' + (r + 1) + ' column ' + (c + 1) +
                            (drawn ? ', drawn by ' + ctx.players[seat] : ''),
                        key: kind + '-' + r + '-' + c,
                        x: kind === 'h' ? c + 0.5 : c, y: kind === 'h' ? r : r + 0.5,
                        enabled: ctx.myTurn && !drawn,
                        onActivate: () => ctx.send({line: kind, row: r, col: c}),
                    });
                    const pad = 12;
                    const hit = kind === 'h'
                        ? {x: x1 + pad, y: y1 - 13, width: GAP - 2 * pad, height: 26}
                        : {x: x1 - 13, y: y1 + pad, width: 26, height: GAP - 2 * pad};
                    ui.svg('rect', Object.assign({class: 'edge-hit', rx: 8}, hit), g);
                    ui.svg('rect', Object.assign({class: 'ring', rx: 8}, hit), g);
                    ui.svg('line', {class: 'edge-line', x1: x1, y1: y1, x2: x2, y2: y2}, g);
                    if (isLast && ctx.animate) {
                        ui.svg('animate', {attributeName: 'stroke-width', from: 14, to: 7, dur: '0.4s'},
                            g.lastChild);
                    }
                }
            }
        }
        const dots = ui.svg('g', {class: 'dot-grid', 'aria-hidden': 'true'}, root);
        for (let r = 0; r <= BOXES; r++) {
            for (let c = 0; c <= BOXES; c++) {
                ui.svg('circle', {class: 'dot', cx: c * GAP, cy: r * GAP, r: 6}, dots);
            }
        }
        container.replaceChildren(root);
    }

    function describe(last) {
        const m = last.move;
        if (!m || !NAMES[m.line]) {
            return null;
        }
        return 'drew a ' + NAMES[m.line].toLowerCase() + ' line (row ' + (m.row + 1) +
            ', column ' + (m.col + 1) + ')';
    }

    function playerInfo(view) {
        const scores = view.scores || [];
        return scores.map((n) => n + (n === 1 ? ' box' : ' boxes'));
    }

    window.PlayhouseBoards = window.PlayhouseBoards || {};
    window.PlayhouseBoards.dots = {render, describe, playerInfo};
}());
