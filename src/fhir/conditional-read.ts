import type { Request } from 'express';
import type { OperationOutcome, Resource } from '@medplum/fhirtypes';

/**
 * HTTP's conditional read and `Prefer: return` as R4 uses them (http.html#cread, #ops):
 * a read whose version the client already has is a 304, and a write answers with the resource,
 * nothing, or an OperationOutcome, as asked.
 */

/** If-None-Match (`W/"3"`, `"3"`, `*`) naming the current version, or If-Modified-Since not older than it. */
export function notModified(req: Request, resource: Resource): boolean {
  const { versionId, lastUpdated } = resource.meta ?? {};
  const ifNoneMatch = req.headers['if-none-match'];
  if (typeof ifNoneMatch === 'string' && versionId) {
    // If-None-Match wins over If-Modified-Since when both are sent (RFC 9110 13.2.2).
    return ifNoneMatch.split(',').some((tag) => {
      const t = tag.trim();
      return t === '*' || t.replace(/^W\//, '') === `"${versionId}"`;
    });
  }
  const since = req.headers['if-modified-since'];
  if (typeof since === 'string' && lastUpdated) {
    const date = Date.parse(since);
    // HTTP dates have whole seconds: modified means a later second than the one the client has.
    return !Number.isNaN(date) && Math.floor(Date.parse(lastUpdated) / 1000) <= Math.floor(date / 1000);
  }
  return false;
}

export type ReturnPreference = 'minimal' | 'representation' | 'OperationOutcome';

/** `Prefer: return=...` of a create, update or patch; representation when absent or unknown. */
export function returnPreference(req: Request): ReturnPreference {
  const prefer = req.headers.prefer;
  const m = typeof prefer === 'string' ? /(?:^|[;,\s])return=(minimal|representation|OperationOutcome)\b/.exec(prefer) : null;
  return (m?.[1] as ReturnPreference | undefined) ?? 'representation';
}

/** What a write answers with, given the preference: the resource, nothing, or the outcome. */
export function preferredBody(preference: ReturnPreference, resource: Resource, outcome: OperationOutcome): Resource | undefined {
  if (preference === 'minimal') return undefined;
  if (preference === 'OperationOutcome') return outcome;
  return resource;
}
