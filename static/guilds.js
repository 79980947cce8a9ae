/*
 * Playhouse guilds list (/guilds): the "Found a guild" form. POST /api/guilds
 * {name, description, open} → 201 and off to the new guild's page; a 400 names
 * the bad field (shown under it), a 409 is shown above the form.
 *
 * Loaded with `defer`, after challenges.js (for its POST helper). No innerHTML.
 */
(function () {
    'use strict';

    const FIELDS = ['name', 'description', 'open'];

    function init() {
        const form = document.getElementById('create-guild');
        if (!form || !window.PlayhouseChallenges) {
            return;
        }
        const {post} = window.PlayhouseChallenges.util;
        const formError = document.getElementById('create-error');
        const submit = document.getElementById('create-submit');
        const inputs = {
            name: document.getElementById('guild-name-input'),
            description: document.getElementById('guild-description-input'),
            open: document.getElementById('guild-open-input'),
        };
        const counter = document.getElementById('guild-description-count');

        function updateCounter() {
            counter.textContent = inputs.description.value.length + ' / '
                + inputs.description.maxLength + ' characters';
        }

        function clearErrors() {
            formError.hidden = true;
            formError.textContent = '';
            for (const field of FIELDS) {
                const message = document.getElementById('guild-' + field + '-error');
                message.hidden = true;
                message.textContent = '';
                document.getElementById('field-' + field).classList.remove('field-invalid');
                inputs[field].removeAttribute('aria-invalid');
            }
        }

        function fieldError(field, text) {
            if (!FIELDS.includes(field)) {
                formError.textContent = text;
                formError.hidden = false;
                return;
            }
            const message = document.getElementById('guild-' + field + '-error');
            message.textContent = text;
            message.hidden = false;
            document.getElementById('field-' + field).classList.add('field-invalid');
            inputs[field].setAttribute('aria-invalid', 'true');
            inputs[field].focus();
        }

        form.addEventListener('submit', async (evt) => {
            evt.preventDefault();
            clearErrors();
            const name = inputs.name.value.trim();
            if (!name) {
                fieldError('name', 'A guild name is required.');
                return;
            }
            submit.disabled = true;
            let reply;
            try {
                reply = await post('/api/guilds', {
                    name: name,
                    description: inputs.description.value,
                    open: inputs.open.checked,
                });
            } catch (e) {
                fieldError(null, 'Cannot reach the server. Try again.');
                submit.disabled = false;
                return;
            }
            if (reply.status === 201 && typeof reply.data.url === 'string') {
                window.location.assign(reply.data.url);
                return;
            }
            submit.disabled = false;
            const text = reply.data.message || 'The guild was not founded (' + reply.status + ').';
            if (reply.status === 409 && reply.data.error === 'guild_taken') {
                fieldError('name', text);
            } else if (reply.status === 401) {
                window.location.assign('/login?next=%2Fguilds');
            } else {
                fieldError(reply.data.field || null, text);
            }
        });
        inputs.description.addEventListener('input', updateCounter);
        updateCounter();
        window.addEventListener('pageshow', () => { submit.disabled = false; });
    }

    if (document.readyState === 'loading') {
        document.addEventListener('DOMContentLoaded', init);
    } else {
        init();
    }
}());
