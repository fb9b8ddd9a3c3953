/**
 * The Workbench left sidebar: streams (rate, lag, DLQ), feature sets, evaluations.
 *
 * Plain DOM on a Lumino widget: the view is a few lists refreshed by polling,
 * and rows are keyed by topic and updated in place so a click never lands on a
 * node that a refresh just replaced.
 */
import { Widget } from '@lumino/widgets';

import { getJSON, IEvaluationsReply, IFeatureSet, IFeatureSetsReply, IStreamsReply, ITopicStats } from './api';
import { sparkline, updateSparkline } from './sparkline';

/** Streams change by the second; the other sections only when a job finishes. */
const STREAMS_POLL_MS = 3000;
const SLOW_POLL_MS = 30000;

export interface ISidebarOptions {
  /** Called with a topic name when the user asks for a tap cell. */
  onInsertTap: (topic: string) => void;
  /** Called with a feature set name for each feature-set action. */
  onInsertPreview: (featureSet: string) => void;
  onReview: (featureSet: string) => void;
  onPromote: (featureSet: string) => void;
}

interface IRow {
  node: HTMLLIElement;
  spark: SVGSVGElement;
  rate: HTMLSpanElement;
  detail: HTMLDivElement;
}

export class WorkbenchSidebar extends Widget {
  constructor(options: ISidebarOptions) {
    super();
    this._onInsertTap = options.onInsertTap;
    this._setActions = options;
    this.id = 'workbench-sidebar';
    this.addClass('wb-sidebar');
    this.title.caption = 'Workbench';

    const header = el('header', 'wb-header');
    header.appendChild(el('h2', 'wb-title', 'Workbench'));
    this._status = el('div', 'wb-status', 'connecting…');
    header.appendChild(this._status);
    this.node.appendChild(header);

    const streams = this._section('streams', 'Streams');
    this._filter = document.createElement('input');
    this._filter.className = 'wb-filter jp-mod-styled';
    this._filter.type = 'search';
    this._filter.placeholder = 'Filter topics';
    this._filter.setAttribute('aria-label', 'Filter topics');
    this._filter.addEventListener('input', () => this._applyFilter());
    streams.appendChild(this._filter);
    this._streamList = el('ul', 'wb-list wb-streams') as HTMLUListElement;
    streams.appendChild(this._streamList);
    this._streamsEmpty = el('p', 'wb-empty', 'No topics yet.');
    streams.appendChild(this._streamsEmpty);

    this._featureSets = this._section('feature-sets', 'Feature sets');
    this._featureSets.appendChild(el('p', 'wb-empty', 'No feature sets yet.'));
    this._evaluations = this._section('evaluations', 'Recent evaluations');
    this._evaluations.appendChild(el('p', 'wb-empty', 'No evaluations yet.'));
  }

  /** Fetch everything now (also used by the refresh command). */
  async refresh(): Promise<void> {
    await Promise.all([this._refreshStreams(), this._refreshSlow()]);
  }

  dispose(): void {
    this._stopPolling();
    super.dispose();
  }

  protected onAfterShow(): void {
    this._startPolling();
  }

  protected onAfterHide(): void {
    // A collapsed sidebar costs the broker nothing.
    this._stopPolling();
  }

  protected onAfterAttach(): void {
    if (this.isVisible) {
      this._startPolling();
    }
  }

  protected onBeforeDetach(): void {
    this._stopPolling();
  }

  private _startPolling(): void {
    if (this._timers.length > 0) {
      return;
    }
    void this.refresh();
    this._timers.push(window.setInterval(() => void this._refreshStreams(), STREAMS_POLL_MS));
    this._timers.push(window.setInterval(() => void this._refreshSlow(), SLOW_POLL_MS));
  }

  private _stopPolling(): void {
    this._timers.forEach(t => window.clearInterval(t));
    this._timers = [];
  }

  private _section(key: string, title: string): HTMLElement {
    const section = el('section', `wb-section wb-section-${key}`);
    section.setAttribute('aria-label', title);
    section.appendChild(el('h3', 'wb-section-title', title));
    this.node.appendChild(section);
    return section;
  }

  private async _refreshStreams(): Promise<void> {
    let reply: IStreamsReply;
    try {
      reply = await getJSON<IStreamsReply>('streams');
    } catch (err) {
      this._setStatus(`server: ${(err as Error).message}`, true);
      return;
    }
    if (!reply.ok) {
      this._setStatus(`broker ${reply.broker}: ${reply.error ?? 'unavailable'}`, true);
    } else if (reply.sampled_at === null) {
      this._setStatus(`broker ${reply.broker}: sampling…`, false);
    } else {
      this._setStatus(`broker ${reply.broker} · every ${reply.interval_s}s`, false);
    }
    this._renderStreams(reply.topics);
  }

  private async _refreshSlow(): Promise<void> {
    try {
      const [sets, evals] = await Promise.all([
        getJSON<IFeatureSetsReply>('feature-sets'),
        getJSON<IEvaluationsReply>('evaluations')
      ]);
      this._renderFeatureSets(sets.feature_sets);
      renderSimpleList(
        this._evaluations,
        evals.evaluations.map(e => `${e.feature_set} · ${e.verdict} · ${e.finished_at}`),
        'No evaluations yet.'
      );
    } catch {
      // The streams poll reports server trouble; these sections keep their last state.
    }
  }

  private _renderFeatureSets(sets: IFeatureSet[]): void {
    this._featureSets.querySelectorAll('.wb-list, .wb-empty').forEach(n => n.remove());
    if (sets.length === 0) {
      this._featureSets.appendChild(el('p', 'wb-empty', 'No feature sets yet.'));
      return;
    }
    const list = el('ul', 'wb-list wb-feature-sets');
    sets.forEach(set => list.appendChild(this._featureSetRow(set)));
    this._featureSets.appendChild(list);
  }

  private _featureSetRow(set: IFeatureSet): HTMLElement {
    const node = el('li', `wb-feature-set wb-stage-${set.stage}`);
    node.dataset.featureSet = set.name;
    const top = el('div', 'wb-stream-top');
    const name = el('span', 'wb-stream-name', set.name);
    name.title = `${set.name}: ${set.features} feature${set.features === 1 ? '' : 's'}`;
    top.append(name, el('span', 'wb-stage', stageLabel(set)));
    const detail = el('div', 'wb-stream-detail', `${set.features} features · ${set.status}`);
    const actions = el('div', 'wb-actions');
    const button = (label: string, aria: string, run: (name: string) => void): void => {
      const b = el('button', 'jp-Button jp-mod-minimal wb-action', label) as HTMLButtonElement;
      b.setAttribute('aria-label', aria);
      b.title = aria;
      b.addEventListener('click', () => run(set.name));
      actions.appendChild(b);
    };
    button('preview', `Insert feature preview cell for ${set.name}`, this._setActions.onInsertPreview);
    button('review', `Open review app for ${set.name}`, this._setActions.onReview);
    button('promote', `Promote ${set.name}`, this._setActions.onPromote);
    node.append(top, detail, actions);
    return node;
  }

  private _renderStreams(topics: ITopicStats[]): void {
    const seen = new Set<string>();
    topics.forEach((topic, index) => {
      seen.add(topic.name);
      let row = this._rows.get(topic.name);
      if (row === undefined) {
        row = this._makeRow(topic.name);
        this._rows.set(topic.name, row);
      }
      // Keep server order (by name) without re-inserting rows that are in place.
      const at = this._streamList.children[index];
      if (at !== row.node) {
        this._streamList.insertBefore(row.node, at ?? null);
      }
      updateRow(row, topic);
    });
    for (const [name, row] of this._rows) {
      if (!seen.has(name)) {
        row.node.remove();
        this._rows.delete(name);
      }
    }
    this._applyFilter();
  }

  private _makeRow(topic: string): IRow {
    // Line 1: the full name and the action; line 2: sparkline and rate; line 3: counts.
    const node = el('li', 'wb-stream') as HTMLLIElement;
    node.dataset.topic = topic;
    const top = el('div', 'wb-stream-top');
    const name = el('span', 'wb-stream-name', topic);
    name.title = topic;
    const button = el('button', 'wb-insert-tap jp-Button jp-mod-minimal', 'insert tap') as HTMLButtonElement;
    button.title = `Insert a tap cell for ${topic} into the notebook`;
    button.setAttribute('aria-label', `Insert tap cell for ${topic}`);
    button.addEventListener('click', () => this._onInsertTap(topic));
    top.append(name, button);
    const bottom = el('div', 'wb-stream-bottom');
    const spark = sparkline([]);
    const rate = el('span', 'wb-stream-rate', '–');
    const detail = el('div', 'wb-stream-detail') as HTMLDivElement;
    bottom.append(spark, rate);
    node.append(top, bottom, detail);
    return { node, spark, rate, detail };
  }

  private _applyFilter(): void {
    const needle = this._filter.value.trim().toLowerCase();
    let shown = 0;
    let hidden = 0;
    for (const [name, row] of this._rows) {
      // Internal topics (changelogs, repartitions) appear only when the filter asks for them.
      const internal = row.node.classList.contains('wb-mod-internal');
      const visible = needle === '' ? !internal : name.toLowerCase().includes(needle);
      row.node.hidden = !visible;
      shown += visible ? 1 : 0;
      hidden += needle === '' && internal ? 1 : 0;
    }
    this._streamsEmpty.hidden = shown > 0 && hidden === 0;
    if (shown === 0) {
      this._streamsEmpty.textContent = this._rows.size === 0 ? 'No topics yet.' : 'No topic matches the filter.';
    } else {
      this._streamsEmpty.textContent = `${hidden} internal topic${hidden === 1 ? '' : 's'} hidden; type to find them.`;
    }
  }

  private _setStatus(text: string, error: boolean): void {
    this._status.textContent = text;
    this._status.classList.toggle('wb-mod-error', error);
  }

  private _onInsertTap: (topic: string) => void;
  private _setActions: ISidebarOptions;
  private _status: HTMLElement;
  private _filter: HTMLInputElement;
  private _streamList: HTMLUListElement;
  private _streamsEmpty: HTMLElement;
  private _featureSets: HTMLElement;
  private _evaluations: HTMLElement;
  private _rows = new Map<string, IRow>();
  private _timers: number[] = [];
}

function updateRow(row: IRow, topic: ITopicStats): void {
  row.node.classList.toggle('wb-mod-internal', topic.internal);
  updateSparkline(row.spark, topic.history);
  row.rate.textContent = topic.rate_per_s === null ? '–' : `${formatNumber(topic.rate_per_s)}/s`;
  row.node.classList.toggle('wb-mod-live', (topic.rate_per_s ?? 0) > 0);
  const parts = [`${formatNumber(topic.messages)} msgs`, `${topic.partitions} part.`];
  const groups = Object.keys(topic.lag).length;
  parts.push(groups === 0 ? 'no groups' : `lag ${formatNumber(topic.lag_total)} (${groups} group${groups === 1 ? '' : 's'})`);
  parts.push(topic.dlq === null ? 'no DLQ' : `DLQ ${formatNumber(topic.dlq.messages)}`);
  row.detail.textContent = parts.join(' · ');
  row.detail.title = Object.entries(topic.lag)
    .map(([group, lag]) => `${group}: lag ${lag}`)
    .join('\n');
  row.node.classList.toggle('wb-mod-dlq', (topic.dlq?.messages ?? 0) > 0);
}

/** "draft", "evaluated +3.8%", "promoted v2". */
export function stageLabel(set: IFeatureSet): string {
  if (set.stage === 'promoted') {
    return `promoted v${set.version}`;
  }
  if (set.stage === 'evaluated') {
    const lift = set.lift === null ? '' : ` ${set.lift >= 0 ? '+' : ''}${(set.lift * 100).toFixed(1)}%`;
    return `evaluated${lift}`;
  }
  return 'draft';
}

function renderSimpleList(section: HTMLElement, items: string[], empty: string): void {
  section.querySelectorAll('.wb-list, .wb-empty').forEach(n => n.remove());
  if (items.length === 0) {
    section.appendChild(el('p', 'wb-empty', empty));
    return;
  }
  const list = el('ul', 'wb-list');
  items.forEach(text => list.appendChild(el('li', 'wb-item', text)));
  section.appendChild(list);
}

/** 1234 -> "1.2k"; rates keep one decimal below 10. */
export function formatNumber(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${(value / 1e9).toFixed(1)}G`;
  if (abs >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (abs >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  if (abs >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  if (abs >= 10 || Number.isInteger(value)) return value.toFixed(0);
  return value.toFixed(1);
}

function el(tag: string, className: string, text?: string): HTMLElement {
  const node = document.createElement(tag);
  node.className = className;
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}
