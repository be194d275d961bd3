// A component's view of the store's durable key-value state (ComponentState in api.ts): the
// store's table, scoped to the component's id.
import type { ComponentState } from './api.js';
import type { Store } from './store.js';

export function componentState(store: Pick<Store, 'getState' | 'setState' | 'onStateChange'>, component: string): ComponentState {
  return {
    get: (key) => store.getState(component, key),
    set: (key, value) => store.setState(component, key, value),
    onChange: (listener) => store.onStateChange((c, key, value) => c === component && listener(key, value)),
  };
}
