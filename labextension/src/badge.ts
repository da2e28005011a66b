import { h } from './dom';
import { statusKind } from './format';

/** A run's status as a coloured badge. */
export function statusBadge(status: string): HTMLElement {
  return h(
    'span',
    { class: `jp-ActorsBadge jp-ActorsBadge-${statusKind(status)}`, 'data-status': status },
    status
  );
}
