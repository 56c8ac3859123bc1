// The login page.
import { login } from './api.js';
import { h, replace } from './dom.js';

export function render(main, done) {
  const msg = h('div', { 'aria-live': 'assertive' });
  const user = h('input', { id: 'identifiant', name: 'username', autocomplete: 'username', required: true });
  const pass = h('input', { id: 'motdepasse', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', class: 'bouton', text: 'Se connecter' });
  const form = h('form', { class: 'connexion', 'aria-labelledby': 'titre-connexion' },
    h('h1', { id: 'titre-connexion', text: "Hyperviseur urbain de l'Aisne" }),
    h('p', { class: 'discret', text: 'Connectez-vous avec votre compte USEDA ou EPCI.' }),
    h('div', { class: 'champ' }, h('label', { for: 'identifiant', text: 'Identifiant' }), user),
    h('div', { class: 'champ' }, h('label', { for: 'motdepasse', text: 'Mot de passe' }), pass),
    msg, submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    replace(msg);
    try {
      const u = await login(user.value.trim(), pass.value);
      done(u);
    } catch (e) {
      const text = e.status === 401 ? 'Identifiant ou mot de passe incorrect.' : e.message;
      replace(msg, h('p', { class: 'erreur', role: 'alert', text }));
      pass.select();
    } finally {
      submit.disabled = false;
    }
  });
  replace(main, form);
  user.focus();
}
