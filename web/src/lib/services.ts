// Which buttons a service row shows: the agent's allow-list (`actions`) narrowed to what makes
// sense in the unit's state (no "start" for a running unit, no "stop" for a stopped one).

import type { UnitAction, UnitStatus } from './types';

export type StateClass = 'active' | 'failed' | 'inactive' | 'changing' | 'missing';

export function stateClass(unit: UnitStatus): StateClass {
  if (unit.load_state === 'not-found') return 'missing';
  switch (unit.active_state) {
    case 'active':
      return 'active';
    case 'failed':
      return 'failed';
    case 'activating':
    case 'deactivating':
    case 'reloading':
      return 'changing';
    default:
      return 'inactive';
  }
}

export function offeredActions(unit: UnitStatus): UnitAction[] {
  const state = stateClass(unit);
  if (state === 'missing') return [];
  return unit.actions.filter((a) => {
    if (a === 'start') return state !== 'active';
    if (a === 'stop') return state === 'active' || state === 'changing';
    return true;
  });
}
