/**
 * A notification when a run started from this browser ends: Lab's own (the bell and a toast) and, when the
 * user allowed it and the page is in the background, the browser's. The panel's start and rerun buttons
 * call `watchStartedRun(runId)`; the run's end arrives through the runs stream the panel already follows.
 */
import { Notification } from '@jupyterlab/apputils';

import { RunsModel } from './model';
import { Run } from './types';
import { endMessage, WatchList } from './watch';

const watched = new WatchList();
let model: RunsModel | null = null;
let openRun: ((runId: string) => void) | null = null;

/** Called once by the plugin: the runs to look at, and how to open a run from the notification. */
export function initNotifications(runs: RunsModel, open: (runId: string) => void): void {
  model = runs;
  openRun = open;
  runs.changed.connect(check);
}

/**
 * Notify when this run ends. Call it right after starting the run from a click: that user gesture also
 * lets the browser ask once for permission to show its own notifications.
 */
export function watchStartedRun(runId: string): void {
  watched.add(runId);
  askBrowserPermission();
  check();
}

function check(): void {
  if (model && watched.size) {
    for (const run of watched.takeEnded(model.runs)) {
      notify(run);
    }
  }
}

function notify(run: Run): void {
  const { message, kind } = endMessage(run);
  Notification.emit(message, kind, {
    autoClose: kind === 'success' ? 10_000 : false,
    actions: openRun ? [{ label: 'Show run', callback: () => openRun?.(run.id) }] : []
  });
  const browser = window.Notification;
  if (browser && browser.permission === 'granted' && document.hidden) {
    const shown = new browser(`Run ${run.status}`, { body: message, tag: `jupyter-actors-run-${run.id}` });
    shown.onclick = () => {
      window.focus();
      openRun?.(run.id);
    };
  }
}

function askBrowserPermission(): void {
  const browser = window.Notification;
  if (browser && browser.permission === 'default') {
    void browser.requestPermission().catch(() => undefined);
  }
}
