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

export interface IFeatureSetsReply {
  available: boolean;
  feature_sets: { name: string; features: number; status: string }[];
}

export interface IEvaluationsReply {
  available: boolean;
  evaluations: { id: string; feature_set: string; verdict: string; finished_at: string }[];
}

/** GET a JSON document below /workbench/api/. */
export async function getJSON<T>(endPoint: string): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'workbench', 'api', endPoint);
  const response = await ServerConnection.makeRequest(url, {}, settings);
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
