/** An actor's builds, newest first, and the selected build's log following live while it builds. */
import { Widget } from '@lumino/widgets';

import { followText, getData, postData } from './api';
import { statusBadge } from './badge';
import { fill, h } from './dom';
import { formatDuration, formatStarted } from './format';
import { LogTail } from './log';
import { Build, buildDuration } from './starting';
import { LOG_LINES } from './detail';


const POLL_MS = 3000;


export class BuildsView extends Widget {
  private body = h('tbody');
  private logTitle = h('div', { class: 'jp-ActorsBuilds-logTitle' });
  private logView = h('pre', { class: 'jp-ActorsRun-log jp-ActorsBuilds-log' });
  private selected: string | null = null;
  private controller: AbortController | undefined;
  private timer: number;

  constructor(
    readonly actorId: string,
    actorName: string
  ) {
    super();
    this.addClass('jp-ActorsRun');
    this.addClass('jp-ActorsBuilds');
    this.title.label = `${actorName} builds`;
    this.title.closable = true;
    const build = h('button', { class: 'jp-Button jp-mod-styled jp-mod-accept jp-ActorsBuilds-build' }, 'Build now');
    build.addEventListener('click', () => void this.build());
    fill(
      this.node,
      h('div', { class: 'jp-ActorsRun-header' }, h('h2', {}, `Builds of ${actorName}`), h('div', { class: 'jp-ActorsRun-actions' }, build)),
      h('div', { class: 'jp-ActorsRun-scroll' }, h('table', { class: 'jp-ActorsRun-items jp-ActorsBuilds-list' },
        h('thead', {}, h('tr', {}, ...['Number', 'Status', 'Started', 'Duration'].map(title => h('th', {}, title)))),
        this.body)),
      h('section', { class: 'jp-ActorsRun-section' }, h('h3', {}, 'Log'), this.logTitle, this.logView)
    );
    this.timer = window.setInterval(() => this.isVisible && void this.refresh(), POLL_MS);
    void this.refresh();
  }

  dispose(): void {
    this.controller?.abort();
    window.clearInterval(this.timer);
    super.dispose();
  }

  private async refresh(): Promise<void> {
    let builds: Build[];
    try {
      builds = (await getData<{ items: Build[] }>(`v2/acts/${this.actorId}/builds?desc=true&limit=100`)).items;
    } catch (error) {
      fill(this.body, h('tr', {}, h('td', { class: 'jp-ActorsRun-error' }, `Cannot list the builds: ${error}`)));
      return;
    }
    fill(this.body, ...builds.map(build => {
      const row = h('tr', { class: 'jp-ActorsTable-row jp-ActorsBuilds-row', tabindex: '0', 'data-build-id': build.id, 'data-status': build.status },
        h('td', {}, build.buildNumber),
        h('td', {}, statusBadge(build.status)),
        h('td', {}, formatStarted(build.startedAt)),
        h('td', { class: 'jp-ActorsTable-num' }, formatDuration(buildDuration(build))));
      row.classList.toggle('jp-mod-selected', build.id === this.selected);
      row.addEventListener('click', () => this.select(build));
      row.addEventListener('keydown', event => event.key === 'Enter' && this.select(build));
      return row;
    }));
    if (!builds.length) {
      fill(this.body, h('tr', {}, h('td', { colspan: '4' }, 'No builds yet.')));
    } else if (this.selected === null) {
      this.select(builds[0]);
    }
  }

  private select(build: Build): void {
    this.selected = build.id;
    for (const row of this.body.querySelectorAll('tr')) {
      row.classList.toggle('jp-mod-selected', row.dataset.buildId === build.id);
    }
    this.controller?.abort();
    const controller = (this.controller = new AbortController());
    const log = new LogTail(LOG_LINES);
    this.logTitle.textContent = `Build ${build.buildNumber} (${build.id})`;
    this.logView.textContent = '';
    followText(`v2/actor-builds/${build.id}/log`, text => {
      log.append(text);
      const view = this.logView;
      const atBottom = view.scrollHeight - view.scrollTop - view.clientHeight < 20;
      view.textContent = log.text;
      if (atBottom) {
        view.scrollTop = view.scrollHeight;
      }
    }, controller.signal).catch(error => {
      if (!controller.signal.aborted) {
        this.logTitle.textContent += ` — following the log failed: ${error}`;
      }
    });
  }

  private async build(): Promise<void> {
    try {
      const build = await postData<Build>(`v2/acts/${this.actorId}/builds`);
      this.selected = null;
      await this.refresh();
      this.select(build);
    } catch (error) {
      this.logTitle.textContent = `Starting a build failed: ${error}`;
    }
  }
}
