/**
 * The run's storages in its detail view: the dataset as a paged table with export links, and the
 * key-value store's keys with previews. Previews are text, JSON or a raster image made from the
 * fetched bytes, or HTML in an iframe sandboxed without scripts or an origin: actor-written content never
 * runs on Lab's origin (SVG and other types are only offered as a download).
 */
import { apiUrl, getData, getJson, getRecordBlob } from './api';
import { fill, h } from './dom';
import { prettyBody, tableOf } from './format';
import { exportPaths, formatBytes, pageLabel, pageOffsets, previewKind } from './starting';

export const PAGE_ROWS = 20;
const PREVIEW_CHARS = 100_000;

function link(label: string, path: string, download = true): HTMLAnchorElement {
  const attrs: Record<string, string> = { href: apiUrl(path), target: '_blank', rel: 'noopener' };
  if (download) {
    attrs.download = '';
  }
  return h('a', attrs, label);
}

function errorText(text: string): HTMLElement {
  return h('span', { class: 'jp-ActorsRun-error' }, text);
}

/** The dataset's items, PAGE_ROWS at a time, with Previous / Next and links to export all of them. */
export class DatasetTable {
  readonly node = h('div', { class: 'jp-ActorsDataset' });
  private offset = 0;
  private done = '';

  constructor(private datasetId: string) {}

  /** (Re)loads the current page; `finished` says whether more items may still come. */
  async load(finished = true): Promise<void> {
    this.done = finished ? '' : ' yet';
    try {
      const { body, headers } = await getJson<unknown[]>(
        `v2/datasets/${this.datasetId}/items?offset=${this.offset}&limit=${PAGE_ROWS}`
      );
      const total = Number(headers.get('X-Apify-Pagination-Total') ?? body.length);
      this.render(body, total);
    } catch (error) {
      fill(this.node, errorText(`Cannot load the dataset: ${error}`));
    }
  }

  private render(items: unknown[], total: number): void {
    const page = { offset: this.offset, limit: PAGE_ROWS, total };
    const exports = h('div', { class: 'jp-ActorsDataset-exports' }, 'Export: ',
      ...exportPaths(this.datasetId).map(({ label, path }) => link(label, path)));
    if (!items.length && this.offset === 0) {
      fill(this.node, h('div', { class: 'jp-ActorsRun-note' }, `No items${this.done}.`));
      return;
    }
    const { previous, next } = pageOffsets(page);
    const button = (label: string, cls: string, offset: number | null) => {
      const element = h('button', { class: `jp-Button jp-mod-styled ${cls}` }, label);
      element.disabled = offset === null;
      element.addEventListener('click', () => {
        if (offset !== null) {
          this.offset = offset;
          void this.load(!this.done);
        }
      });
      return element;
    };
    const { columns, rows } = tableOf(items);
    fill(
      this.node,
      h('div', { class: 'jp-ActorsRun-scroll' }, h('table', { class: 'jp-ActorsRun-items' },
        h('thead', {}, h('tr', {}, h('th', { class: 'jp-ActorsDataset-index' }, '#'), ...columns.map(column => h('th', {}, column)))),
        h('tbody', {}, ...rows.map((cells, index) => h('tr', {},
          h('td', { class: 'jp-ActorsDataset-index' }, String(this.offset + index + 1)),
          ...cells.map(cell => h('td', {}, cell)))))
      )),
      h('div', { class: 'jp-ActorsDataset-pager' },
        button('‹ Previous', 'jp-ActorsDataset-previous', previous),
        h('span', { class: 'jp-ActorsDataset-page' }, pageLabel(page, items.length)),
        button('Next ›', 'jp-ActorsDataset-next', next)),
      exports
    );
  }
}

interface KeyItem {
  key: string;
  size: number;
}

/** The key-value store's keys (size, download) with a preview of the selected record. */
export class KvsBrowser {
  readonly node = h('div', { class: 'jp-ActorsKvs' });
  private list = h('tbody');
  private preview = h('div', { class: 'jp-ActorsKvs-preview' });
  private objectUrl: string | null = null;

  constructor(private storeId: string) {}

  async load(): Promise<void> {
    try {
      const data = await getData<{ items: KeyItem[] }>(`v2/key-value-stores/${this.storeId}/keys?limit=1000`);
      fill(this.list, ...data.items.map(item => this.row(item)));
      fill(
        this.node,
        data.items.length
          ? h('div', { class: 'jp-ActorsKvs-body' },
              h('table', { class: 'jp-ActorsKvs-keys' },
                h('thead', {}, h('tr', {}, h('th', {}, 'Key'), h('th', {}, 'Size'), h('th', {}, ''))), this.list),
              this.preview)
          : h('div', { class: 'jp-ActorsRun-note' }, 'No records.')
      );
    } catch (error) {
      fill(this.node, errorText(`Cannot list the keys: ${error}`));
    }
  }

  dispose(): void {
    this.revoke();
  }

  private row(item: KeyItem): HTMLElement {
    const path = `v2/key-value-stores/${this.storeId}/records/${encodeURIComponent(item.key)}`;
    const row = h('tr', { class: 'jp-ActorsKvs-key', tabindex: '0', 'data-key': item.key },
      h('td', {}, item.key),
      h('td', { class: 'jp-ActorsTable-num' }, formatBytes(item.size)),
      h('td', {}, link('download', `${path}?attachment=true`)));
    const show = () => {
      for (const other of this.list.querySelectorAll('.jp-mod-selected')) {
        other.classList.remove('jp-mod-selected');
      }
      row.classList.add('jp-mod-selected');
      void this.show(item.key);
    };
    row.addEventListener('click', event => {
      if (!(event.target instanceof HTMLAnchorElement)) {
        show();
      }
    });
    row.addEventListener('keydown', event => event.key === 'Enter' && show());
    return row;
  }

  private revoke(): void {
    if (this.objectUrl) {
      URL.revokeObjectURL(this.objectUrl);
      this.objectUrl = null;
    }
  }

  private async show(key: string): Promise<void> {
    this.revoke();
    fill(this.preview, h('div', { class: 'jp-ActorsRun-note' }, `Loading ${key}…`));
    try {
      const blob = await getRecordBlob(this.storeId, key);
      if (!blob) {
        fill(this.preview, h('div', { class: 'jp-ActorsRun-note' }, `${key} is gone.`));
        return;
      }
      const kind = previewKind(blob.type);
      const title = h('div', { class: 'jp-ActorsKvs-previewTitle' }, `${key} (${blob.type || 'no type'}, ${formatBytes(blob.size)})`);
      if (kind === 'image') {
        this.objectUrl = URL.createObjectURL(blob);
        fill(this.preview, title, h('img', { class: 'jp-ActorsKvs-image', src: this.objectUrl, alt: key }));
      } else if (kind === 'json' || kind === 'text') {
        const text = await blob.slice(0, PREVIEW_CHARS).text();
        const shown = kind === 'json' && blob.size <= PREVIEW_CHARS ? prettyBody(text, blob.type) : text;
        fill(this.preview, title, h('pre', { class: 'jp-ActorsRun-record jp-ActorsKvs-text' },
          blob.size > PREVIEW_CHARS ? `${shown}\n… (cut; download it for all of it)` : shown));
      } else if (kind === 'html') {
        // An empty sandbox: no scripts, no forms, an opaque origin (never Lab's), no top navigation.
        const frame = h('iframe', { class: 'jp-ActorsKvs-html', sandbox: '', title: `${key} (sandboxed)` });
        frame.srcdoc = await blob.slice(0, PREVIEW_CHARS).text();
        fill(this.preview, title, frame);
      } else {
        fill(this.preview, title, h('div', { class: 'jp-ActorsRun-note' },
          'No preview for this type (never rendered here, it could run the actor\'s code as you): download it.'));
      }
    } catch (error) {
      fill(this.preview, errorText(`Cannot load ${key}: ${error}`));
    }
  }
}
