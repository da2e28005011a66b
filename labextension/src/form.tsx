/**
 * "Start a run": a form generated from the actor's input schema (rjsf through JupyterLab's themed
 * FormComponent, checked in the browser with ajv), or the input as JSON, plus memory and timeout. The
 * server checks the input against the schema again; its 400 message is shown in the form.
 */
import { FormComponent, ReactWidget } from '@jupyterlab/ui-components';
import { RJSFSchema } from '@rjsf/utils';
import { ReadonlyJSONObject } from '@lumino/coreutils';
import { customizeValidator } from '@rjsf/validator-ajv8';
import React, { useEffect, useState } from 'react';

import { getData, getJson, postBody } from './api';
import { parseWhole, startPath } from './starting';
import { Run } from './types';

/** ajv (draft 7, what the server checks), typed for JupyterLab's FormComponent. */
const validator = customizeValidator<ReadonlyJSONObject>();

export interface ActorSummary {
  id: string;
  name: string;
  username?: string;
}

interface ActorDetails {
  id: string;
  defaultRunOptions: { build: string; memoryMbytes: number; timeoutSecs: number };
}

/** What the form knows of the selected actor: its defaults and its default build's input schema. */
interface Loaded {
  actor: ActorDetails;
  schema: RJSFSchema | null;
  /** Why there is no schema (no build yet), or null. */
  note: string | null;
}

async function loadActor(actorId: string): Promise<Loaded> {
  const actor = await getData<ActorDetails>(`v2/acts/${actorId}`);
  let build: { id: string };
  try {
    build = await getData<{ id: string }>(`v2/acts/${actorId}/builds/default`);
  } catch {
    return { actor, schema: null, note: 'The actor has no build yet: build it first (Builds).' };
  }
  const { body } = await getJson<{ components?: { schemas?: { inputSchema?: RJSFSchema } } }>(
    `v2/actor-builds/${build.id}/openapi.json`
  );
  const schema = body.components?.schemas?.inputSchema ?? null;
  return { actor, schema, note: schema?.properties ? null : 'The actor has no input schema: give the input as JSON.' };
}

export interface StartFormProps {
  initialActor?: string;
  onStarted: (run: Run) => void;
  onBuilds: (actor: ActorSummary) => void;
}

export function StartForm(props: StartFormProps): JSX.Element {
  const [actors, setActors] = useState<ActorSummary[] | null>(null);
  const [actorId, setActorId] = useState(props.initialActor ?? '');
  const [loaded, setLoaded] = useState<Loaded | null>(null);
  const [formData, setFormData] = useState<ReadonlyJSONObject>({});
  const [asJson, setAsJson] = useState(false);
  const [jsonText, setJsonText] = useState('{}');
  const [memory, setMemory] = useState('');
  const [timeout, setTimeoutText] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    getData<{ items: ActorSummary[] }>('v2/acts?limit=1000')
      .then(data => {
        const items = [...data.items].sort((a, b) => a.name.localeCompare(b.name));
        setActors(items);
        if (!actorId && items.length) {
          setActorId(items[0].id);
        } else if (actorId && !items.some(a => a.id === actorId)) {
          const named = items.find(a => a.name === actorId);
          setActorId(named ? named.id : items[0]?.id ?? '');
        }
      })
      .catch(reason => setError(`Cannot list the actors: ${reason.message ?? reason}`));
  }, []);

  useEffect(() => {
    if (!actorId) {
      return;
    }
    setLoaded(null);
    setError(null);
    setFormData({});
    loadActor(actorId)
      .then(result => {
        setLoaded(result);
        setAsJson(!result.schema?.properties);
      })
      .catch(reason => setError(`Cannot load the actor: ${reason.message ?? reason}`));
  }, [actorId]);

  const start = async (input: unknown) => {
    setError(null);
    let path: string;
    try {
      path = startPath(actorId, {
        memoryMbytes: parseWhole(memory, 'Memory (MB)', 128),
        timeoutSecs: parseWhole(timeout, 'Timeout (s)', 0)
      });
    } catch (reason) {
      setError((reason as Error).message);
      return;
    }
    setBusy(true);
    try {
      props.onStarted(await postBody<Run>(path, JSON.stringify(input), 'application/json'));
    } catch (reason) {
      setError((reason as Error).message ?? String(reason));
    } finally {
      setBusy(false);
    }
  };

  const startJson = () => {
    let input: unknown;
    try {
      input = JSON.parse(jsonText);
    } catch (reason) {
      setError(`The input is not JSON: ${(reason as Error).message}`);
      return;
    }
    void start(input);
  };

  const selected = actors?.find(a => a.id === actorId);
  const defaults = loaded?.actor.defaultRunOptions;
  const options = (
    <div className="jp-ActorsForm-options">
      <label>
        Memory (MB)
        <input className="jp-mod-styled jp-ActorsForm-memory" inputMode="numeric" value={memory}
          placeholder={defaults ? String(defaults.memoryMbytes) : ''} onChange={e => setMemory(e.target.value)} />
      </label>
      <label>
        Timeout (s)
        <input className="jp-mod-styled jp-ActorsForm-timeout" inputMode="numeric" value={timeout}
          placeholder={defaults ? String(defaults.timeoutSecs) : ''} onChange={e => setTimeoutText(e.target.value)} />
      </label>
    </div>
  );
  const startButton = (type: 'submit' | 'button', onClick?: () => void) => (
    <button type={type} className="jp-Button jp-mod-styled jp-mod-accept jp-ActorsForm-start" disabled={busy || !loaded}
      onClick={onClick}>
      {busy ? 'Starting…' : 'Start run'}
    </button>
  );

  return (
    <div className="jp-ActorsForm">
      <h2>Start an actor run</h2>
      <div className="jp-ActorsForm-actor">
        <label>
          Actor
          <select className="jp-mod-styled jp-ActorsForm-actorSelect" value={actorId} disabled={!actors}
            onChange={e => setActorId(e.target.value)}>
            {(actors ?? []).map(actor => (
              <option key={actor.id} value={actor.id}>{actor.name}</option>
            ))}
          </select>
        </label>
        {selected && (
          <button type="button" className="jp-Button jp-mod-styled jp-ActorsForm-builds" onClick={() => props.onBuilds(selected)}>
            Builds
          </button>
        )}
        {loaded?.schema?.properties && (
          <label className="jp-ActorsForm-mode">
            <input type="checkbox" checked={asJson} onChange={e => {
              if (e.target.checked) {
                setJsonText(JSON.stringify(formData, null, 2));
              }
              setAsJson(e.target.checked);
            }} />
            Edit the input as JSON
          </label>
        )}
      </div>
      {actors && !actors.length && <p className="jp-ActorsForm-note">No actors yet: create one with %%actor in a notebook.</p>}
      {!loaded && actorId && !error && <p className="jp-ActorsForm-note">Loading the input schema…</p>}
      {loaded?.note && <p className="jp-ActorsForm-note">{loaded.note}</p>}
      {error && <pre className="jp-ActorsForm-error" role="alert">{error}</pre>}
      {loaded && !asJson && loaded.schema?.properties && (
        <FormComponent
          schema={loaded.schema}
          formData={formData}
          validator={validator}
          onChange={event => setFormData(event.formData ?? {})}
          onSubmit={event => void start(event.formData ?? {})}
          showErrorList={false}
          omitExtraData
        >
          {options}
          {startButton('submit')}
        </FormComponent>
      )}
      {loaded && (asJson || !loaded.schema?.properties) && (
        <div className="jp-ActorsForm-json">
          <label>
            Input (JSON)
            <textarea className="jp-mod-styled jp-ActorsForm-jsonInput" rows={12} value={jsonText} spellCheck={false}
              onChange={e => setJsonText(e.target.value)} />
          </label>
          {options}
          {startButton('button', startJson)}
        </div>
      )}
    </div>
  );
}

/** The form as a main-area widget. */
export class StartRunWidget extends ReactWidget {
  constructor(private props: StartFormProps) {
    super();
    this.addClass('jp-ActorsFormWidget');
    this.title.label = 'Start an actor run';
    this.title.closable = true;
  }

  protected render(): JSX.Element {
    return <StartForm {...this.props} />;
  }
}
