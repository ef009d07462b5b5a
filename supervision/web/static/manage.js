// Care manager pages: the recipients list (new recipient) and one recipient's plan editor.
// The editor keeps the plan as the JSON the API takes; every change asks the service to
// validate the draft and preview its nights, so errors appear next to their field and
// the timeline shows the night as it would be. Saving sends the same JSON.
import { api, el, explain, t } from './common.js';

const $ = (id) => document.getElementById(id);
const lang = document.documentElement.lang === 'sv' ? 'sv-SE' : 'en-GB';
const ALL_DAYS = [0, 1, 2, 3, 4, 5, 6];

/** A field path as people read it: "check_times.1.at" -> "Check time 2". */
function fieldLabel(path) {
  if (!path) return t('manage.field.plan');
  const parts = path.split('.');
  const words = parts.filter((p) => !/^\d+$/.test(p));
  const index = parts.find((p) => /^\d+$/.test(p));
  // "pauses" is the list, "pauses.0" one of its items, "pauses.0.end" a field of it.
  const key = 'manage.field.' + words.join('.') + (index !== undefined && words.length === 1 ? '.item' : '');
  const name = t(key) === key ? path : t(key);
  return index === undefined ? name : `${name} ${Number(index) + 1}`;
}

/** A plan problem in the page's language: plan_error.<code> with its params when there is
 * such a key (a unit code in params.unit translated as plan_error.unit.<unit>), else the
 * service's English msg. */
function problemText(d) {
  const key = typeof d.code === 'string' && d.code ? 'plan_error.' + d.code : '';
  if (!key || t(key) === key) return d.msg;
  const params = { ...(d.params || {}) };
  if (typeof params.unit === 'string') {
    const unit = 'plan_error.unit.' + params.unit;
    if (t(unit) !== unit) params.unit = t(unit);
  }
  return t(key, params);
}

/** [{field, msg}] from a 422 of ours ({detail: [{field, msg, code, params}]}) or of FastAPI ({loc}). */
function problems(error) {
  const detail = error && error.body && error.body.detail;
  if (error && error.status === 422 && Array.isArray(detail)) {
    return detail.map((d) => ({
      field: typeof d.field === 'string' ? d.field
        : (d.loc || []).filter((p) => p !== 'body').join('.'),
      msg: problemText(d),
    }));
  }
  return null;
}

function dateText(iso, opts = { weekday: 'short', day: 'numeric', month: 'short' }) {
  return new Date(iso + 'T12:00:00').toLocaleDateString(lang, opts);
}

function stampText(iso) {
  return new Date(iso).toLocaleString(lang, { dateStyle: 'medium', timeStyle: 'short' });
}

// ---------------------------------------------------------------- recipients list
function listPage() {
  const form = $('new-recipient');
  const status = $('new-recipient-status');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form);
    status.textContent = '';
    const body = {};
    for (const name of ['name', 'address', 'unit', 'access_info']) body[name] = form.elements[name].value;
    try {
      const made = await api('/api/recipients', { method: 'POST', body });
      location.href = `/manage/recipients/${made.id}`;
    } catch (error) {
      const found = problems(error);
      if (found) showErrors(form, found, status);
      else status.textContent = explain(error);
    }
  });
}

// ---------------------------------------------------------------- errors next to fields
function clearErrors(root) {
  for (const node of root.querySelectorAll('.field-error')) node.remove();
  for (const node of root.querySelectorAll('[aria-invalid]')) node.removeAttribute('aria-invalid');
  for (const node of root.querySelectorAll('.invalid')) node.classList.remove('invalid');
}

/** Each message next to its field (or the nearest enclosing one), all listed in `summary`. */
function showErrors(root, found, summary) {
  clearErrors(root);
  const items = [];
  for (const { field, msg } of found) {
    let path = field;
    let target = null;
    while (path && !(target = root.querySelector(`[data-field="${path}"]`))) {
      path = path.includes('.') ? path.slice(0, path.lastIndexOf('.')) : '';
    }
    const label = fieldLabel(field);
    if (target) {
      target.classList.add('invalid');
      for (const input of target.querySelectorAll('input, select, textarea')) input.setAttribute('aria-invalid', 'true');
      target.append(el('p', { class: 'field-error', 'data-error-for': field }, `${label}: ${msg}`));
    }
    items.push(el('li', {}, el('strong', {}, label), ` ${msg}`));
  }
  if (summary) {
    summary.replaceChildren(el('p', {}, t('manage.errors', { n: found.length })), el('ul', {}, ...items));
    summary.hidden = false;
  }
}

// ---------------------------------------------------------------- timeline
function pct(iso, night) {
  const start = Date.parse(night.starts_at);
  const span = Date.parse(night.ends_at) - start;
  return Math.max(0, Math.min(100, ((Date.parse(iso) - start) / span) * 100));
}

/** One night as a bar from boundary to boundary, with its windows as blocks. */
function timeline(night, big) {
  const bar = el('div', { class: 'timeline' + (big ? ' big' : '') + (night.skip ? ' skipped' : '') });
  bar.setAttribute('role', 'img');
  const spoken = night.windows.map((w) => `${w.due_local} (${w.opens_local}–${w.closes_local})`).join(', ');
  bar.setAttribute('aria-label', `${dateText(night.night)}: ${spoken || t('manage.no_checks')}`);
  const every = big ? 2 : 6;
  night.ticks.forEach((tick, i) => {
    if (i % every) return;
    const mark = el('span', { class: 'tick' }, big ? tick.label : '');
    mark.style.left = pct(tick.at, night) + '%';
    bar.append(mark);
  });
  if (night.dst_change) {
    const mark = el('span', { class: 'dst-mark', title: dstText(night) });
    mark.style.left = pct(night.dst_change.at, night) + '%';
    bar.append(mark);
  }
  night.windows.forEach((w, i) => {
    const left = pct(w.opens, night);
    const block = el('span', {
      class: 'win' + (w.skip ? ' skipped' : '') + (w.dst ? ' moved' : ''),
      title: windowText(w),
      'data-at': w.at,
    });
    block.style.left = left + '%';
    block.style.width = Math.max(0.4, pct(w.closes, night) - left) + '%';
    const due = el('span', { class: 'due' });
    const width = Date.parse(w.closes) - Date.parse(w.opens);
    due.style.left = ((Date.parse(w.due) - Date.parse(w.opens)) / width) * 100 + '%';
    block.append(due);
    if (big) block.append(el('span', { class: 'label' + (i % 2 ? ' low' : '') }, w.due_local));
    bar.append(block);
  });
  return bar;
}

function windowText(w) {
  let text = `${w.at}: ${w.opens_local}–${w.closes_local}`;
  if (w.dst === 'gap') text += ' · ' + t('manage.dst.gap', { at: w.at, due: w.due_local });
  if (w.dst === 'repeated') text += ' · ' + t('manage.dst.repeated', { at: w.at });
  if (w.skip) text += ' · ' + skipText(w.skip);
  return text;
}

function skipText(skip) {
  const what = t('manage.skip.' + skip.code);
  return skip.text ? `${what}: ${skip.text}` : what;
}

function dstText(night) {
  const c = night.dst_change;
  return t(c.minutes > 0 ? 'manage.dst.forward' : 'manage.dst.back', { hours: night.hours });
}

// ---------------------------------------------------------------- the editor
function editorPage() {
  let recipient = JSON.parse($('recipient').textContent);
  const form = $('editor');
  const summary = $('error-summary');
  const saveButton = $('save');
  const revertButton = $('revert');
  const saveStatus = $('save-status');
  let state = null;
  let saved = '';
  let previewSeq = 0;
  let previewTimer = null;
  let nights = [];
  let shownNight = null;

  function blankPlan() {
    return {
      timezone: 'Europe/Stockholm', check_times: [], window_before_minutes: 15,
      window_after_minutes: 15, max_lookin_seconds: 30,
      follow_up: { interval_minutes: 15, max_follow_ups: 1 }, consent: null, pauses: [],
      skip_nights: [], night_boundary: '12:00', effective_from: null,
    };
  }

  function load(plan) {
    state = JSON.parse(JSON.stringify(plan || blankPlan()));
    // A version already in force needs no date: saving again means "from tonight".
    if (state.effective_from && state.effective_from <= recipient.tonight) state.effective_from = null;
    saved = JSON.stringify(state);
    fill();
    clearErrors(form);
    summary.hidden = true;
    dirty();
  }

  const scalarInputs = ['window_before_minutes', 'window_after_minutes', 'max_lookin_seconds',
    'follow_up.interval_minutes', 'follow_up.max_follow_ups', 'timezone', 'night_boundary',
    'effective_from', 'consent.given_on', 'consent.valid_until'];

  function getPath(path) {
    return path.split('.').reduce((obj, key) => (obj == null ? undefined : obj[key]), state);
  }

  function setPath(path, value) {
    const keys = path.split('.');
    let obj = state;
    for (const key of keys.slice(0, -1)) obj = obj[key];
    obj[keys[keys.length - 1]] = value;
  }

  /** Numbers stay numbers; anything else goes as typed, for the service to point at. */
  function typed(input) {
    if (input.type === 'number') {
      const n = Number(input.value);
      return input.value !== '' && Number.isInteger(n) ? n : input.value;
    }
    if (input.name === 'effective_from' || input.name === 'consent.valid_until') return input.value || null;
    return input.value;
  }

  function fill() {
    for (const name of scalarInputs) {
      const input = form.elements[name];
      const value = getPath(name);
      input.value = value == null ? '' : String(value);
    }
    $('consent-given').checked = state.consent !== null;
    $('consent-dates').hidden = state.consent === null;
    renderCheckTimes();
    renderPauses();
    renderSkips();
  }

  for (const name of scalarInputs) {
    form.elements[name].addEventListener('input', (event) => {
      if (name.startsWith('consent.') && state.consent === null) return;
      setPath(name, typed(event.target));
      changed();
    });
  }

  $('consent-given').addEventListener('change', (event) => {
    if (event.target.checked) {
      // Tonight's date (a night is named by its evening), so consent covers tonight.
      state.consent = { given_on: form.elements['consent.given_on'].value || recipient.tonight, valid_until: form.elements['consent.valid_until'].value || null };
      form.elements['consent.given_on'].value = state.consent.given_on;
    } else {
      state.consent = null;
    }
    $('consent-dates').hidden = state.consent === null;
    changed();
  });

  function removeButton(list, index, rerender) {
    const button = el('button', { type: 'button', class: 'link remove' }, t('manage.remove'));
    button.addEventListener('click', () => { list.splice(index, 1); rerender(); changed(); });
    return button;
  }

  function input(attrs, onInput) {
    const node = el('input', attrs);
    node.addEventListener('input', () => { onInput(node); changed(); });
    return node;
  }

  function renderCheckTimes() {
    const list = $('check-times');
    list.replaceChildren();
    state.check_times.forEach((check, i) => {
      if (!Array.isArray(check.weekdays)) check.weekdays = ALL_DAYS.slice();
      const at = input({ type: 'time', value: check.at || '', class: 'at', name: `check_times.${i}.at` },
        (node) => { check.at = node.value; });
      const days = el('div', { class: 'weekdays', 'data-field': `check_times.${i}.weekdays`, role: 'group', 'aria-label': t('manage.field.check_times.weekdays') });
      for (const day of ALL_DAYS) {
        const box = el('input', { type: 'checkbox', checked: check.weekdays.includes(day), value: String(day) });
        box.addEventListener('change', () => {
          check.weekdays = ALL_DAYS.filter((d) => (d === day ? box.checked : check.weekdays.includes(d)));
          changed();
        });
        days.append(el('label', { class: 'day' }, box, t('manage.weekday.' + day)));
      }
      list.append(el('li', { class: 'row check-time', 'data-field': `check_times.${i}` },
        el('label', { class: 'field', 'data-field': `check_times.${i}.at` }, fieldLabel(`check_times.${i}.at`), at),
        days, removeButton(state.check_times, i, renderCheckTimes)));
    });
  }

  function renderPauses() {
    const list = $('pauses');
    list.replaceChildren();
    state.pauses.forEach((pause, i) => {
      list.append(el('li', { class: 'row', 'data-field': `pauses.${i}` },
        el('label', { 'data-field': `pauses.${i}.start` }, t('manage.field.pauses.start'),
          input({ type: 'date', value: pause.start || '', name: `pauses.${i}.start` }, (n) => { pause.start = n.value; })),
        el('label', { 'data-field': `pauses.${i}.end` }, t('manage.field.pauses.end'),
          input({ type: 'date', value: pause.end || '', name: `pauses.${i}.end` }, (n) => { pause.end = n.value; })),
        el('label', { class: 'wide', 'data-field': `pauses.${i}.reason` }, t('manage.field.pauses.reason'),
          input({ type: 'text', value: pause.reason || '', maxLength: 200, name: `pauses.${i}.reason` }, (n) => { pause.reason = n.value; })),
        removeButton(state.pauses, i, renderPauses)));
    });
  }

  function renderSkips() {
    const list = $('skip-nights');
    list.replaceChildren();
    state.skip_nights.forEach((skip, i) => {
      list.append(el('li', { class: 'row', 'data-field': `skip_nights.${i}` },
        el('label', { 'data-field': `skip_nights.${i}.night` }, t('manage.field.skip_nights.night'),
          input({ type: 'date', value: skip.night || '', name: `skip_nights.${i}.night` }, (n) => { skip.night = n.value; })),
        el('label', { class: 'wide', 'data-field': `skip_nights.${i}.reason` }, t('manage.field.skip_nights.reason'),
          input({ type: 'text', value: skip.reason || '', maxLength: 200, name: `skip_nights.${i}.reason` }, (n) => { skip.reason = n.value; })),
        removeButton(state.skip_nights, i, renderSkips)));
    });
  }

  $('add-time').addEventListener('click', () => {
    state.check_times.push({ at: '', weekdays: ALL_DAYS.slice() });
    renderCheckTimes();
    const inputs = $('check-times').querySelectorAll('input.at');
    inputs[inputs.length - 1].focus();
    changed();
  });
  $('add-pause').addEventListener('click', () => {
    state.pauses.push({ start: recipient.tonight, end: recipient.tonight, reason: '' });
    renderPauses();
    changed();
  });
  $('add-skip').addEventListener('click', () => {
    state.skip_nights.push({ night: recipient.tonight, reason: '' });
    renderSkips();
    changed();
  });

  function dirty() {
    const isDirty = JSON.stringify(state) !== saved;
    saveButton.disabled = !isDirty;
    revertButton.disabled = !isDirty;
    return isDirty;
  }

  function changed() {
    if (dirty()) saveStatus.textContent = '';
    clearTimeout(previewTimer);
    previewTimer = setTimeout(refreshPreview, 300);
  }

  revertButton.addEventListener('click', () => { load(recipient.plan); refreshPreview(); });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    saveButton.disabled = true;
    saveStatus.textContent = t('manage.saving');
    const base = recipient.plan_version || 0;
    try {
      const result = await api(`/api/recipients/${recipient.id}/plan?base_version=${base}`, { method: 'PUT', body: state });
      recipient = await api(`/api/recipients/${recipient.id}`);
      load(recipient.plan);
      renderStatus();
      refreshHistory();
      refreshPreview();
      if (!result.changed) saveStatus.textContent = t('manage.unchanged');
      else {
        const checks = result.checks;
        saveStatus.textContent = [
          t('manage.saved', { version: result.version }),
          t('manage.replanned', { created: checks.created, updated: checks.updated, removed: checks.removed }),
          result.pushed_to.length ? t('manage.pushed')
            : (recipient.camera ? t('manage.not_pushed') : t('manage.camera.none') + '.'),
        ].join(' ');
      }
    } catch (error) {
      const found = problems(error);
      if (found) {
        showErrors(form, found, summary);
        saveStatus.textContent = t('manage.not_saved');
      } else {
        saveStatus.textContent = explain(error);
      }
      dirty();
    }
  });

  // ---- status cards
  function renderStatus() {
    const c = recipient.consent;
    const consent = [el('span', { class: `pill consent-${c.state}` }, t('manage.consent.' + c.state))];
    if (c.given_on) {
      consent.push(el('p', {}, c.valid_until ? t('manage.consent.period', { from: c.given_on, until: c.valid_until })
        : t('manage.consent.period_open', { from: c.given_on })));
    }
    if (c.state !== 'valid') consent.push(el('p', { class: 'hint' }, t('manage.consent.none_hint')));
    $('consent-status').replaceChildren(...consent);

    const cam = recipient.camera;
    if (!cam) $('camera-status').replaceChildren(el('p', { class: 'muted' }, t('manage.camera.none')));
    else {
      const state = cam.online ? 'online' : (cam.enrolled ? 'offline' : 'not_enrolled');
      $('camera-status').replaceChildren(
        el('p', {}, cam.id, ' ', el('span', { class: 'pill ' + (cam.online ? 'ok' : 'danger') }, t('manage.camera.' + state))),
        cam.last_seen_at ? el('p', { class: 'muted' }, t('manage.camera.last_seen', { time: stampText(cam.last_seen_at) })) : '');
    }

    const plan = [];
    if (recipient.plan_version == null) plan.push(el('p', { class: 'muted' }, t('manage.plan.none')));
    else {
      plan.push(el('p', {}, t('manage.plan.version', { version: recipient.plan_version, by: recipient.plan_created_by, time: stampText(recipient.plan_created_at) })));
      if (recipient.in_force_version !== recipient.plan_version) {
        plan.push(el('p', { class: 'pill warn' }, t('manage.plan.pending', {
          version: recipient.plan_version, from: recipient.plan.effective_from,
          current: recipient.in_force_version == null ? '—' : recipient.in_force_version,
        })));
      }
    }
    $('plan-status').replaceChildren(...plan);
  }

  // ---- preview: validation, timeline, upcoming nights
  const startInput = $('preview-start');
  startInput.addEventListener('change', () => refreshPreview());

  async function refreshPreview() {
    const seq = ++previewSeq;
    const start = startInput.value ? `&start=${startInput.value}` : '';
    const url = `/api/recipients/${recipient.id}/preview?nights=14${start}`;
    try {
      // Unsaved changes: the service validates the draft and previews it; else the saved plan.
      const data = await api(url, dirty() ? { method: 'POST', body: state } : {});
      if (seq !== previewSeq) return;
      clearErrors(form);
      summary.hidden = true;
      $('preview-note').hidden = !dirty();
      $('preview-note').textContent = t('manage.preview_unsaved');
      renderNights(data);
    } catch (error) {
      if (seq !== previewSeq) return;
      const found = problems(error);
      if (found) {
        // The draft cannot be previewed until it is fixed: show the saved plan meanwhile.
        showErrors(form, found, summary);
        $('preview-note').hidden = false;
        $('preview-note').textContent = t('manage.preview_stale');
        try {
          const saved = await api(url);
          if (seq === previewSeq) renderNights(saved);
        } catch (ignored) { /* the note already says what is shown */ }
      } else {
        $('preview-note').hidden = false;
        $('preview-note').textContent = explain(error);
      }
    }
  }

  function renderNights(data) {
    nights = data.nights;
    if (!startInput.value) startInput.value = data.tonight;
    const next = $('next-dst');
    next.hidden = !data.next_dst_night;
    if (data.next_dst_night) {
      next.textContent = t('manage.next_dst', { night: dateText(data.next_dst_night, { day: 'numeric', month: 'long', year: 'numeric' }) });
      next.onclick = () => { startInput.value = data.next_dst_night; shownNight = data.next_dst_night; refreshPreview(); };
    }
    const list = $('nights');
    list.replaceChildren();
    for (const night of nights) {
      const pills = [];
      if (night.draft) pills.push(el('span', { class: 'pill warn' }, t('manage.draft')));
      else if (night.version != null) pills.push(el('span', { class: 'pill' }, t('manage.version_short', { version: night.version })));
      if (night.dst_change) pills.push(el('span', { class: 'pill dst' }, dstText(night)));
      if (night.skip) pills.push(el('span', { class: 'pill danger' }, skipText(night.skip)));
      if (night.version == null) pills.push(el('span', { class: 'pill' }, t('manage.no_plan_night')));
      const times = night.windows.map((w) => (w.dst === 'gap' ? `${w.at}→${w.due_local}` : w.at)).join(', ');
      const head = el('button', { type: 'button', class: 'link night-date' }, dateText(night.night));
      head.addEventListener('click', () => { shownNight = night.night; showNight(); });
      list.append(el('li', { class: 'night' + (night.dst_change ? ' dst' : '') + (night.skip ? ' skipped' : ''), 'data-night': night.night },
        el('div', { class: 'night-head' }, head, ...pills),
        timeline(night, false),
        el('div', { class: 'night-times muted' }, times || t('manage.no_checks'))));
    }
    showNight();
  }

  function showNight() {
    const night = nights.find((n) => n.night === shownNight) || nights[0];
    if (!night) return;
    $('timeline-night').textContent = dateText(night.night, { weekday: 'long', day: 'numeric', month: 'long' });
    $('timeline').replaceChildren(timeline(night, true));
    const legend = [];
    for (const w of night.windows) legend.push(el('li', { class: w.skip ? 'skipped' : '' }, windowText(w)));
    if (night.dst_change) legend.push(el('li', { class: 'dst' }, dstText(night)));
    if (!night.windows.length) legend.push(el('li', { class: 'muted' }, night.skip ? skipText(night.skip) : t('manage.no_checks')));
    $('timeline-legend').replaceChildren(...legend);
    for (const li of $('nights').children) li.classList.toggle('shown', li.dataset.night === night.night);
  }

  // ---- history
  function valueText(field, value) {
    if (value === null || value === undefined) return '—';
    if (field === 'check_times' && Array.isArray(value)) {
      return value.map((c) => (c.weekdays.length === 7 ? c.at
        : `${c.at} (${c.weekdays.map((d) => t('manage.weekday.' + d)).join(' ')})`)).join(', ') || '—';
    }
    if (field === 'pauses' && Array.isArray(value)) return value.map((p) => `${p.start}–${p.end} ${p.reason}`).join('; ') || '—';
    if (field === 'skip_nights' && Array.isArray(value)) return value.map((s) => `${s.night} ${s.reason}`).join('; ') || '—';
    if (field === 'consent' && typeof value === 'object') return `${value.given_on}–${value.valid_until || ''}`;
    return typeof value === 'object' ? JSON.stringify(value) : String(value);
  }

  async function refreshHistory() {
    try {
      const entries = await api(`/api/recipients/${recipient.id}/plan/history`);
      const list = $('history');
      list.replaceChildren();
      for (const entry of entries) {
        const head = [t('manage.version_short', { version: entry.version }), stampText(entry.created_at), entry.created_by];
        if (entry.effective_from) head.push(t('manage.effective_from.short', { night: entry.effective_from }));
        const changes = entry.version === 1 && entries.length && entry === entries[entries.length - 1]
          ? [el('li', { class: 'muted' }, t('manage.first_version'))]
          : entry.changes.map((c) => el('li', {}, el('strong', {}, fieldLabel(c.field)), ': ',
            el('span', { class: 'old' }, valueText(c.field, c.old)), ' → ', el('span', { class: 'new' }, valueText(c.field, c.new))));
        list.append(el('li', { 'data-version': String(entry.version) }, el('div', { class: 'history-head' }, head.join(' · ')), el('ul', {}, ...changes)));
      }
      if (!entries.length) list.append(el('li', { class: 'muted' }, t('manage.plan.none')));
    } catch (error) {
      $('history').replaceChildren(el('li', { class: 'error' }, explain(error)));
    }
  }

  load(recipient.plan);
  renderStatus();
  refreshPreview();
  refreshHistory();
}

if ($('editor')) editorPage();
else if ($('new-recipient')) listPage();
