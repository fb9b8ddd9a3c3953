/**
 * Typed access to the Workbench server extension (workbench/jupyter/handlers.py).
 *
 * Requests go through ServerConnection so they carry the server token and the
 * XSRF cookie exactly like JupyterLab's own calls do.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** Per-topic view of one sampler tick; mirrors `sampler.StreamSampler.snapshot`. */
export interface ITopicStats {
  name: string;
  /** A stream framework's own topic (state changelog, repartition); hidden until searched for. */
  internal: boolean;
  partitions: number;
  messages: number;
  rate_per_s: number | null;
  history: number[];
  lag: Record<string, number>;
  lag_total: number;
  dlq: { topic: string; messages: number } | null;
}

export interface IStreamsReply {
  broker: string;
  ok: boolean;
  error: string | null;
  interval_s: number;
  sampled_at: number | null;
  topics: ITopicStats[];
}

/** One registered feature set; mirrors `handlers._feature_sets`. */
export interface IFeatureSet {
  name: string;
  features: number;
  stage: 'draft' | 'evaluated' | 'promoted';
  status: string;
  verdict: string | null;
  /** Relative loss reduction of the newest evaluation. */
  lift: number | null;
  version: number | null;
  /** Job health of the active version. */
  job: string | null;
}

export interface IFeatureSetsReply {
  available: boolean;
  feature_sets: IFeatureSet[];
}

/** A dry run or a promotion; mirrors `handlers.promotion_reply`. */
export interface IPromotionReply {
  feature_set: string;
  version: number;
  status: 'refused' | 'planned' | 'promoted' | 'unchanged';
  summary: string;
  plan: string | null;
  gate: { ok: boolean; reasons: string[]; evaluation_id: string | null; skew_id: string | null; forced: boolean };
  record_id: string | null;
}

export interface IReviewReply {
  feature_set: string;
  url: string;
}

export interface IEvaluationsReply {
  available: boolean;
  evaluations: { id: string; feature_set: string; verdict: string; finished_at: string }[];
}

/** GET a JSON document below /workbench/api/. */
export async function getJSON<T>(endPoint: string): Promise<T> {
  return request<T>(endPoint, {});
}

/** POST a JSON body below /workbench/api/ (ServerConnection adds the XSRF header). */
export async function postJSON<T>(endPoint: string, body: unknown): Promise<T> {
  return request<T>(endPoint, { method: 'POST', body: JSON.stringify(body) });
}

async function request<T>(endPoint: string, init: RequestInit): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'workbench', 'api', endPoint);
  const response = await ServerConnection.makeRequest(url, init, settings);
  let data: any = null;
  const text = await response.text();
  if (text.length > 0) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response, data?.message ?? String(data));
  }
  return data as T;
}
