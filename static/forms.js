/*
 * Playhouse forms: small progressive enhancements, no inline handlers.
 *  - input[data-match="<id>"]: must equal the input with that id
 *    ("Passwords do not match" before the form is sent; the server checks too).
 *  - [data-counter-for="<id>"]: live "N / max characters" for a maxlength field.
 *  - Submit buttons are disabled while a form is being sent (no double posts),
 *    and enabled again when the page is shown from the back/forward cache.
 */
(function () {
    'use strict';

    function bindMatch(input) {
        const other = document.getElementById(input.dataset.match);
        if (!other) {
            return;
        }
        const check = () => {
            const mismatch = input.value !== '' && input.value !== other.value;
            input.setCustomValidity(mismatch ? 'Passwords do not match' : '');
        };
        input.addEventListener('input', check);
        other.addEventListener('input', check);
    }

    function bindCounter(counter) {
        const field = document.getElementById(counter.dataset.counterFor);
        const max = field ? field.maxLength : -1;
        if (!field || max <= 0) {
            return;
        }
        const update = () => {
            counter.textContent = field.value.length + ' / ' + max + ' characters';
        };
        field.addEventListener('input', update);
        update();
    }

    function guardSubmit(form) {
        form.addEventListener('submit', () => {
            for (const button of form.querySelectorAll('button[type="submit"]')) {
                button.disabled = true;
            }
        });
    }

    function init() {
        document.querySelectorAll('input[data-match]').forEach(bindMatch);
        document.querySelectorAll('[data-counter-for]').forEach(bindCounter);
        document.querySelectorAll('form.form').forEach(guardSubmit);
        window.addEventListener('pageshow', (evt) => {
            if (evt.persisted) {
                document.querySelectorAll('form.form button[type="submit"]').forEach((b) => {
                    b.disabled = false;
                });
            }
        });
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', init);
    } else {
        init();
    }
}());
