// A refused password in the person's words: each broken rule by its code.
import { ApiError, explain, t } from './common.js';

export function passwordProblem(error) {
  if (error instanceof ApiError && error.status === 422 && Array.isArray(error.body?.detail)) {
    const own = error.body.detail.filter((d) => d.type === 'password');
    if (own.length) return own.map((d) => t('users.password.' + d.code, { min: d.min })).join(' ');
  }
  return explain(error);
}
