/** jupyter-actors in JupyterLab: the "Actors" sidebar panel, run detail views, palette and launcher items. */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { find } from '@lumino/algorithm';

import { BuildsView } from './builds';
import { RunDetail } from './detail';
import { StartRunWidget } from './form';
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
  export const startRun = 'jupyter-actors:start-run';
  export const openBuilds = 'jupyter-actors:open-builds';
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
    let opened = 0;
    const model = new RunsModel();
    model.start();
    const tracker = new WidgetTracker<MainAreaWidget<RunDetail>>({ namespace: 'jupyter-actors-run' });

    const openRun = (runId: string) => void app.commands.execute(CommandIDs.openRun, { runId });
    const panel = new RunsPanel(model, openRun, () => void app.commands.execute(CommandIDs.startRun));
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
        const widget = new MainAreaWidget({ content: new RunDetail(model, runId, openRun) });
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

    // Notebook outputs of the live view's run bundle show the run live (notebooks clone this registry).
    rendermime?.addFactory(runRendererFactory(model, openRun));
    initNotifications(model, openRun);
    app.commands.addCommand(CommandIDs.watchRun, {
      label: 'Notify When the Run Ends',
      execute: args => watchStartedRun(String(args.runId))
    });

    app.commands.addCommand(CommandIDs.startRun, {
      label: 'Start Actor Run…',
      caption: 'Start a run from a form made from the actor\'s input schema',
      icon: actorsIcon,
      execute: args => {
        const content = new StartRunWidget({
          initialActor: args.actor ? String(args.actor) : undefined,
          onStarted: run => {
            watchStartedRun(run.id);
            openRun(run.id);
          },
          onBuilds: actor => void app.commands.execute(CommandIDs.openBuilds, { actorId: actor.id, actorName: actor.name })
        });
        const widget = new MainAreaWidget({ content });
        widget.id = `jupyter-actors-start-${++opened}`;
        widget.title.label = content.title.label;
        widget.title.icon = actorsIcon;
        app.shell.add(widget, 'main');
        app.shell.activateById(widget.id);
        return widget;
      }
    });
    app.commands.addCommand(CommandIDs.openBuilds, {
      label: args => `Show Builds of ${args.actorName ?? 'an Actor'}`,
      execute: args => {
        const actorId = String(args.actorId);
        const id = `jupyter-actors-builds-${actorId}`;
        if (!find(app.shell.widgets('main'), widget => widget.id === id)) {
          const content = new BuildsView(actorId, String(args.actorName ?? actorId));
          const widget = new MainAreaWidget({ content });
          widget.id = id;
          widget.title.label = content.title.label;
          widget.title.icon = actorsIcon;
          app.shell.add(widget, 'main');
        }
        app.shell.activateById(id);
      }
    });

    palette?.addItem({ command: CommandIDs.openPanel, category: 'Actors' });
    palette?.addItem({ command: CommandIDs.startRun, category: 'Actors' });
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
