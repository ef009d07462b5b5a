// Each edit has the service validate and preview the draft, so errors follow the rules saving uses.
import { api, explain, t } from './common.js';
import { dateText } from './dates.js';
import { clearErrors, problems, showErrors } from './field_errors.js';
import { chooseNight, drawNights } from './plan_nights.js';
import { draftPlan } from './plan_state.js';

const $ = (id) => document.getElementById(id);
const startInput = $('preview-start');
const nextDst = $('next-dst');
const note = $('preview-note');
let editor = null; // { recipientId, form, summary, dirty }, from bindPreview
let previewSeq = 0; // only the latest request may draw
let nextDstNight = null;

/** `dirty()` says whether the draft has unsaved changes (and updates the buttons that care). */
export function bindPreview({ recipientId, form, summary, dirty }) {
  editor = { recipientId, form, summary, dirty };
  startInput.addEventListener('change', () => refreshPreview());
  nextDst.addEventListener('click', () => {
    startInput.value = nextDstNight;
    chooseNight(nextDstNight);
    refreshPreview();
  });
}

function showNote(text) {
  note.hidden = false;
  note.textContent = text;
}

export async function refreshPreview() {
  const { recipientId, form, summary, dirty } = editor;
  const seq = ++previewSeq;
  const start = startInput.value ? `&start=${startInput.value}` : '';
  const url = `/api/recipients/${recipientId}/preview?nights=14${start}`;
  try {
    // Unsaved changes: the service validates the draft and previews it; else the saved plan.
    const data = await api(url, dirty() ? { method: 'POST', body: draftPlan() } : {});
    if (seq !== previewSeq) return;
    clearErrors(form, summary);
    note.hidden = !dirty();
    note.textContent = t('manage.preview_unsaved');
    show(data);
  } catch (error) {
    if (seq !== previewSeq) return;
    const found = problems(error);
    if (found) {
      // The draft cannot be previewed until it is fixed: show the saved plan meanwhile.
      showErrors(form, found, summary, 'manage.errors');
      showNote(t('manage.preview_stale'));
      try {
        const saved = await api(url);
        if (seq === previewSeq) show(saved);
      } catch (ignored) { /* the note already says what is shown */ }
    } else {
      showNote(explain(error));
    }
  }
}

function show(data) {
  if (!startInput.value) startInput.value = data.tonight;
  nextDstNight = data.next_dst_night;
  nextDst.hidden = !nextDstNight;
  if (nextDstNight) {
    nextDst.textContent = t('manage.next_dst', { night: dateText(nextDstNight, { day: 'numeric', month: 'long', year: 'numeric' }) });
  }
  drawNights(data.nights);
}
