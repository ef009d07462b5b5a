// The header on every page: the theme switch and the phone's menu button.
// The theme is kept per browser in a cookie the server reads, so every later page is drawn
// in it from the first paint (the CSP allows no inline script to choose it earlier); a
// change here applies at once, without a reload that would lose what the page holds.
const root = document.documentElement;
const sheet = document.getElementById('theme-light');
const choice = document.getElementById('theme-choice');
const scheme = document.querySelector('meta[name="color-scheme"]');
const SCHEMES = { system: 'dark light', dark: 'dark', light: 'light' };
const YEAR = 365 * 24 * 3600;

function apply(theme) {
  // the media each choice loads theme-light.css for, as the server wrote them on the link
  sheet.media = sheet.dataset[`media${theme[0].toUpperCase()}${theme.slice(1)}`];
  root.dataset.theme = theme;
  scheme.content = SCHEMES[theme];
}

choice.addEventListener('change', () => {
  const theme = Object.hasOwn(SCHEMES, choice.value) ? choice.value : 'system';
  const secure = location.protocol === 'https:' ? '; secure' : '';
  document.cookie = `nt_theme=${theme}; path=/; max-age=${YEAR}; samesite=lax${secure}`;
  apply(theme);
});

// On a phone the header is one line: the name and a menu button that opens the rest
// below it (app.css shows it all on wider screens, where the button is not shown).
const bar = document.querySelector('header.bar');
const toggle = bar.querySelector('.menu-toggle');

function setOpen(open) {
  bar.classList.toggle('open', open);
  toggle.setAttribute('aria-expanded', String(open));
}

toggle.addEventListener('click', () => setOpen(!bar.classList.contains('open')));
bar.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && bar.classList.contains('open')) {
    setOpen(false);
    toggle.focus();
  }
});
