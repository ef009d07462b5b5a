// The period report's chart: checks per night by result, drawn by the vendored uPlot
// (static/vendor/uplot, MIT) from the figures the page carries; the table below has them too.
import { t } from './common.js';

const data = JSON.parse(document.getElementById('chart-data').textContent);
const box = document.getElementById('chart');
const SERIES = [
  ['on_time', 'on-time', '#2e7d32'], ['late', 'late', '#b26a00'], ['missed', 'missed', '#c62828'],
  ['skipped', 'skipped', '#6d6d6d'], ['no_lookin', 'no-lookin', '#6a1b9a'],
];

function draw() {
  const nights = data.nights;
  // axes and grid in the page's palette (light or dark theme), read as drawn
  const css = getComputedStyle(document.documentElement);
  const fg = css.getPropertyValue('--fg').trim() || '#000';
  const grid = { stroke: css.getPropertyValue('--line').trim() || '#ccc', width: 1 };
  const xs = nights.map((n) => Date.parse(`${n.night}T12:00:00Z`) / 1000);
  const options = {
    width: Math.max(280, box.clientWidth), height: 260,
    scales: { x: { time: true } },
    axes: [{ stroke: fg, grid, ticks: grid, values: (u, ticks) => ticks.map((s) => new Date(s * 1000).toISOString().slice(5, 10)) },
      { stroke: fg, grid, ticks: grid }],
    // the nights' own name in the legend (uPlot's default is the English "Time")
    series: [{ label: t('manage.report.col.night') }, ...SERIES.map(([, cat, stroke]) => ({ label: t(`manage.report.cat.${cat}`), stroke, width: 2, points: { show: true } }))],
  };
  box.replaceChildren();
  // eslint-disable-next-line no-undef
  return new uPlot(options, [xs, ...SERIES.map(([key]) => nights.map((n) => n[key]))], box);
}

let plot = draw();
box.dataset.drawn = 'true';
const redraw = () => { plot.destroy(); plot = draw(); };
window.addEventListener('resize', redraw);
// the theme switch or the system's setting changes the palette without a reload
window.matchMedia('(prefers-color-scheme: light)').addEventListener('change', redraw);
const sheet = document.getElementById('theme-light');
if (sheet) new MutationObserver(redraw).observe(sheet, { attributes: true, attributeFilter: ['media'] });
