import { OperationOutcomeError, badRequest, gone, isResource, notFound } from '@medplum/core';
import type { SearchRequest, WithId } from '@medplum/core';
import { FhirRepository } from '@medplum/fhir-router';
import type { ReadHistoryOptions } from '@medplum/fhir-router';
import type { Bundle, Reference, Resource } from '@medplum/fhirtypes';
import type { Database, Queryable } from '../db/index.ts';
import { SUPPORTED_RESOURCE_TYPES } from '../profiles/index.ts';
import { searchResources } from './search/search.ts';
import { searchSystem } from './search/system.ts';
import { assertAllowed } from './access.ts';
import type { AccessPolicy, ScopeInteraction } from './access.ts';
import { historyBundle } from './history.ts';
import type { HistoryRequest } from './history.ts';
import { notFoundError } from './outcomes.ts';
import { localReference } from './references.ts';
import { selectCurrent, selectCurrentMany, selectVersion } from './storage.ts';
import type { ResourceKey, StoredVersion } from './storage.ts';

export interface RequestContext {
  tenantId: string;
  /** What the caller's scopes allow; checked by every method before it touches the database. */
  access: AccessPolicy;
  /** Absolute base of the FHIR API (e.g. https://host/fhir), for fullUrl and paging links. */
  baseUrl: string;
  /**
   * Every absolute base under which a reference is to this server (PUBLIC_BASE_URL's and the
   * request's /fhir); absent: baseUrl alone. References under them are local (references.ts).
   */
  localBases?: string[];
}

export const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;
const supportedTypes = new Set<string>(SUPPORTED_RESOURCE_TYPES);

/**
 * The reading half of the FHIR repository (read, vread, _include, history, search), confined to
 * the tenant and checked against the caller's scopes; PostgresRepository (repository.ts) adds the
 * writes. Search and history (search/, history.ts) need no more than this.
 */
export abstract class ResourceReader extends FhirRepository {
  readonly db: Database;
  readonly context: RequestContext;
  /** Set while this instance runs inside a transaction. */
  protected readonly tx: Queryable | undefined;

  constructor(db: Database, context: RequestContext, tx?: Queryable) {
    super();
    this.db = db;
    this.context = context;
    this.tx = tx;
  }

  /** This server's FHIR bases, for telling local absolute references from foreign ones. */
  get localBases(): string[] {
    return this.context.localBases ?? (this.context.baseUrl ? [this.context.baseUrl] : []);
  }

  /** The connection to read with: the open transaction, if any. */
  get conn(): Queryable {
    return this.tx ?? this.db;
  }

  async readResource<T extends Resource>(resourceType: string, id: string): Promise<WithId<T>> {
    this.allow(resourceType, 'r');
    if (!ID_PATTERN.test(id)) throw new OperationOutcomeError(notFound);
    return liveContent(await selectCurrent(this.conn, this.key(resourceType, id)), resourceType, id) as WithId<T>;
  }

  async readReference<T extends Resource>(reference: Reference<T>): Promise<WithId<T>> {
    const [resourceType, id] = localReference(reference.reference ?? '', this.localBases).split('/');
    if (!resourceType || !id) throw new OperationOutcomeError(badRequest(`Invalid reference: ${reference.reference}`));
    return this.readResource<T>(resourceType, id);
  }

  async readReferences<T extends Resource>(references: readonly Reference<T>[]): Promise<(T | Error)[]> {
    // One query per type rather than one per reference: _include reads many at once.
    const byType = new Map<string, string[]>();
    const local = references.map((ref) => localReference(ref.reference ?? '', this.localBases));
    for (const reference of local) {
      const [type, id] = reference.split('/');
      if (type && id && supportedTypes.has(type)) byType.set(type, [...(byType.get(type) ?? []), id]);
    }
    // _include of a type the caller may not read is refused as a whole (403), not silently trimmed.
    for (const type of byType.keys()) this.allow(type, 'r');
    const found = new Map<string, StoredVersion>();
    for (const [type, ids] of byType) {
      for (const row of await selectCurrentMany(this.conn, this.context.tenantId, type, ids)) {
        if (!row.deleted) found.set(`${type}/${row.id}`, row);
      }
    }
    return local.map((reference) => {
      const row = found.get(reference);
      return row ? (JSON.parse(row.content) as T) : new OperationOutcomeError(notFound);
    });
  }

  async readVersion<T extends Resource>(resourceType: string, id: string, vid: string): Promise<WithId<T>> {
    this.allow(resourceType, 'r');
    const versionId = Number(vid);
    if (!Number.isInteger(versionId) || versionId < 1 || !ID_PATTERN.test(id)) throw new OperationOutcomeError(notFound);
    const version = await selectVersion(this.conn, this.key(resourceType, id), versionId);
    if (!version) throw new OperationOutcomeError(notFound);
    if (version.deleted) throw new OperationOutcomeError(gone);
    return JSON.parse(version.content);
  }

  async readHistory<T extends Resource>(resourceType: string, id: string, options?: ReadHistoryOptions): Promise<Bundle<WithId<T>>> {
    this.allow(resourceType, 'r');
    return historyBundle(this, { resourceType, id, offset: options?.offset, count: options?.limit }) as Promise<Bundle<WithId<T>>>;
  }

  /** System history (`GET /fhir/_history`): every type the caller may search, newest first. */
  async readSystemHistory(options: Omit<HistoryRequest, 'resourceType' | 'id'>): Promise<Bundle> {
    const types = SUPPORTED_RESOURCE_TYPES.filter((type) => this.context.access.allows(type, 's'));
    if (types.length === 0) assertAllowed(this.context.access, 'Patient', 's'); // the 403 says what is missing
    return historyBundle(this, { ...options, resourceType: types });
  }

  /** Type-level history (`GET /fhir/Claim/_history`), which FhirRepository does not declare. */
  async readTypeHistory(resourceType: string, options: Omit<HistoryRequest, 'resourceType' | 'id'>): Promise<Bundle> {
    this.allow(resourceType, 's');
    return historyBundle(this, { ...options, resourceType });
  }

  async search<T extends Resource>(searchRequest: SearchRequest<T>): Promise<Bundle<WithId<T>>> {
    if (searchRequest.types?.length) {
      for (const type of searchRequest.types) this.allow(type, 's');
      return searchSystem(this, searchRequest) as Promise<Bundle<WithId<T>>>;
    }
    this.allow(searchRequest.resourceType, 's');
    return searchResources(this, searchRequest) as Promise<Bundle<WithId<T>>>;
  }

  /** A chain or `_has` reads another type's index: the caller needs search scope on that type too. */
  allowSearchOf(resourceType: string): void {
    this.allow(resourceType, 's');
  }

  async searchByReference<T extends Resource>(
    searchRequest: SearchRequest<T>,
    referenceField: string,
    references: string[],
  ): Promise<Record<string, WithId<T>[]>> {
    const result: Record<string, WithId<T>[]> = {};
    for (const reference of references) {
      result[reference] = await this.searchResources<T>({
        ...searchRequest,
        filters: [...(searchRequest.filters ?? []), { code: referenceField, operator: 'eq', value: reference }],
      });
    }
    return result;
  }

  /** 404 for a type we do not serve, then 403 unless the caller's scopes allow the interaction. */
  protected allow(resourceType: string, interaction: ScopeInteraction): void {
    assertSupportedType(resourceType);
    assertAllowed(this.context.access, resourceType, interaction);
  }

  protected key(resourceType: string, id: string): ResourceKey {
    return { tenantId: this.context.tenantId, resourceType, id };
  }
}

function assertSupportedType(resourceType: string): void {
  if (!supportedTypes.has(resourceType)) {
    throw notFoundError(`Resource type ${resourceType} is not supported by this server`);
  }
}

/** The live resource of a stored current version: 404 if none, 410 if deleted. */
export function liveContent(current: StoredVersion | undefined, resourceType: string, id: string): Resource {
  if (!current) throw new OperationOutcomeError(notFound);
  if (current.deleted) throw new OperationOutcomeError(gone);
  const resource = JSON.parse(current.content) as Resource;
  if (!isResource(resource) || resource.resourceType !== resourceType || resource.id !== id) {
    throw new Error(`Stored content of ${resourceType}/${id} is corrupt`);
  }
  return resource;
}
