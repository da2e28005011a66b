/** jupyter-actors in JupyterLab: the "Actors" sidebar panel, run detail views, palette and launcher items. */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';

import { RunDetail } from './detail';
import { actorsIcon } from './icon';
import { RunsModel } from './model';
import { initNotifications, watchStartedRun } from './notify';
import { RunsPanel } from './panel';
import { runRendererFactory } from './renderer';

const PANEL_ID = 'jupyter-actors-runs';

export namespace CommandIDs {
  export const openPanel = 'jupyter-actors:open-panel';
  export const openRun = 'jupyter-actors:open-run';
  export const watchRun = 'jupyter-actors:watch-run';
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'jupyter-actors-labextension:plugin',
  description: 'The Actors panel: runs of jupyter-actors, live, with their logs, results and controls.',
  autoStart: true,
  optional: [ICommandPalette, ILauncher, ILayoutRestorer, IRenderMimeRegistry],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    launcher: ILauncher | null,
    restorer: ILayoutRestorer | null,
    rendermime: IRenderMimeRegistry | null
  ) => {
    const model = new RunsModel();
    model.start();
    const tracker = new WidgetTracker<MainAreaWidget<RunDetail>>({ namespace: 'jupyter-actors-run' });

    const panel = new RunsPanel(model, runId => void app.commands.execute(CommandIDs.openRun, { runId }));
    panel.id = PANEL_ID;
    panel.title.icon = actorsIcon;
    panel.title.caption = 'Actors';
    app.shell.add(panel, 'left', { rank: 850 });

    app.commands.addCommand(CommandIDs.openPanel, {
      label: args => (args.isLauncher ? 'Actor Runs' : 'Show Actor Runs'),
      caption: 'Open the Actors panel: the runs, live',
      icon: actorsIcon,
      execute: () => app.shell.activateById(PANEL_ID)
    });
    app.commands.addCommand(CommandIDs.openRun, {
      label: args => `Show Run ${args.runId ?? ''}`,
      execute: args => {
        const runId = String(args.runId);
        const open = tracker.find(widget => widget.content.runId === runId);
        if (open) {
          app.shell.activateById(open.id);
          return open;
        }
        const widget = new MainAreaWidget({ content: new RunDetail(model, runId) });
        widget.id = `jupyter-actors-run-${runId}`;
        widget.title.icon = actorsIcon;
        // The content names itself (actor, status): mirror its title on the tab.
        const sync = () => {
          widget.title.label = widget.content.title.label;
          widget.title.caption = widget.content.title.caption;
        };
        widget.content.title.changed.connect(sync);
        sync();
        void tracker.add(widget);
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
        return widget;
      }
    });

    const openRun = (runId: string) => void app.commands.execute(CommandIDs.openRun, { runId });
    // Notebook outputs of the live view's run bundle show the run live (notebooks clone this registry).
    rendermime?.addFactory(runRendererFactory(model, openRun));
    initNotifications(model, openRun);
    app.commands.addCommand(CommandIDs.watchRun, {
      label: 'Notify When the Run Ends',
      execute: args => watchStartedRun(String(args.runId))
    });

    palette?.addItem({ command: CommandIDs.openPanel, category: 'Actors' });
    launcher?.add({ command: CommandIDs.openPanel, args: { isLauncher: true }, category: 'Other', rank: 1 });
    if (restorer) {
      restorer.add(panel, PANEL_ID);
      void restorer.restore(tracker, {
        command: CommandIDs.openRun,
        args: widget => ({ runId: widget.content.runId }),
        name: widget => widget.content.runId
      });
    }
  }
};

export default plugin;
