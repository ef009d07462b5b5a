// One draft plan (the JSON the API takes) that form, preview and save share, and what "unsaved" means.

/** The plan a recipient starts with, as the server's domain defines it (#blank-plan on the
 * page). Never made up here: without it the page says so in the console. */
const BLANK_PLAN = readBlankPlan();

let draft = null; // the plan being edited
let savedJson = ''; // the draft as it was loaded, to tell whether it has changed since

function readBlankPlan() {
  const block = document.getElementById('blank-plan');
  const plan = block ? JSON.parse(block.textContent || 'null') : null;
  if (!plan || typeof plan !== 'object' || !Object.keys(plan).length) {
    console.error('plan editor: the page has no blank plan (#blank-plan is missing or empty); '
      + 'a recipient without a plan cannot be edited');
    return null;
  }
  return plan;
}

function blankPlan() {
  if (!BLANK_PLAN) throw new Error('plan editor: no blank plan from the server (#blank-plan)');
  return BLANK_PLAN;
}

/** Starts a new draft from a saved plan (null: none yet, so the blank plan). `tonight` is the
 * recipient's current night, as an ISO date. Returns the draft. */
export function startDraft(savedPlan, tonight) {
  draft = JSON.parse(JSON.stringify(savedPlan || blankPlan()));
  // A version already in force needs no date: saving again means "from tonight".
  if (draft.effective_from && draft.effective_from <= tonight) draft.effective_from = null;
  savedJson = JSON.stringify(draft);
  return draft;
}

/** The draft itself (edited in place by the form; replaced by each startDraft). */
export function draftPlan() {
  return draft;
}

/** The draft's value at a dotted path ("follow_up.interval_minutes"); undefined when absent. */
export function getPath(path) {
  return path.split('.').reduce((obj, key) => (obj == null ? undefined : obj[key]), draft);
}

/** Sets the draft's value at a dotted path; the objects on the way must exist. */
export function setPath(path, value) {
  const keys = path.split('.');
  let obj = draft;
  for (const key of keys.slice(0, -1)) obj = obj[key];
  obj[keys[keys.length - 1]] = value;
}

/** Whether the draft differs from the plan it was started from. */
export function isDirty() {
  return JSON.stringify(draft) !== savedJson;
}
