import { Run } from '../src/types';

/** A finished run of actor `hello` as the API sends it; tests change what they look at. */
export function makeRun(id: string, startedAt: string, status = 'SUCCEEDED', actorName = 'hello'): Run {
  return {
    id, actId: `act-${actorName}`, actorName, status, statusMessage: null, startedAt, finishedAt: null,
    options: { build: 'latest', memoryMbytes: 1024, timeoutSecs: 3600 }, stats: { durationMillis: 1500 },
    buildNumber: '0.0.1', exitCode: 0, timeoutAt: null, defaultKeyValueStoreId: `kvs-${id}`,
    defaultDatasetId: `ds-${id}`
  };
}
