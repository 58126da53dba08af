import { randomUUID } from 'node:crypto';
import {
  OperationOutcomeError,
  allOk,
  badRequest,
  conflict,
  created,
  getStatus,
  gone,
  isResource,
  notFound,
  preconditionFailed,
} from '@medplum/core';
import type { Operation, SearchRequest, WithId } from '@medplum/core';
import { FhirRepository } from '@medplum/fhir-router';
import type {
  CreateResourceOptions,
  DeleteResourceOptions,
  ReadHistoryOptions,
  TransactionOptions,
  UpdateResourceOptions,
} from '@medplum/fhir-router';
import type { Bundle, OperationOutcome, Parameters, Reference, Resource, ResourceType } from '@medplum/fhirtypes';
import type { Database, Queryable } from '../db/index.ts';
import { SUPPORTED_RESOURCE_TYPES, validateResource } from '../profiles/index.ts';
import { extractSearchIndex } from './search/index-values.ts';
import { searchResources } from './search/search.ts';
import { searchSystem } from './search/system.ts';
import type { ChangeObserver } from './change-observer.ts';
import { assertAllowed } from './access.ts';
import type { AccessPolicy, ScopeInteraction } from './access.ts';
import { historyBundle } from './history.ts';
import type { HistoryRequest } from './history.ts';
import { notFoundError } from './outcomes.ts';
import { localReference, resolveConditionalReferences } from './references.ts';
import { applyPatchOrRefuse, assertWellFormedPatch } from './patch.ts';
import { selectCurrent, selectCurrentMany, selectVersion, writeVersion } from './storage.ts';
import type { Interaction, ResourceKey, StoredVersion } from './storage.ts';

/** Who is asking: every read and write is confined to this tenant. */
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

const ID_PATTERN = /^[A-Za-z0-9\-.]{1,64}$/;
const supportedTypes = new Set<string>(SUPPORTED_RESOURCE_TYPES);

/**
 * The FHIR repository on PostgreSQL that @medplum/fhir-router's FhirRouter drives. One instance per
 * request, carrying the tenant; inside `withTransaction` a second instance shares the transaction.
 */
export class PostgresRepository extends FhirRepository {
  readonly db: Database;
  readonly context: RequestContext;
  readonly #observer: ChangeObserver | undefined;
  /** Set while this instance runs inside a transaction. */
  readonly #tx: Queryable | undefined;

  constructor(db: Database, context: RequestContext, options: { observer?: ChangeObserver; tx?: Queryable } = {}) {
    super();
    this.db = db;
    this.context = context;
    this.#observer = options.observer;
    this.#tx = options.tx;
  }

  /** This server's FHIR bases, for telling local absolute references from foreign ones. */
  get localBases(): string[] {
    return this.context.localBases ?? (this.context.baseUrl ? [this.context.baseUrl] : []);
  }

  /**
   * Whether this write created the resource: version 1, or the first version after a delete
   * (a PUT that re-creates a deleted resource answers 201, as a create does).
   */
  static created(resource: Resource): boolean {
    return createdResources.has(resource);
  }

  /** The connection to read with: the open transaction, if any. */
  get conn(): Queryable {
    return this.#tx ?? this.db;
  }

  /**
   * This repository (tenant, observer, open transaction) with another access policy: for the
   * server's own writes on behalf of a caller whose scopes were checked (billing's FHIR operations).
   */
  withAccess(access: AccessPolicy): PostgresRepository {
    return new PostgresRepository(this.db, { ...this.context, access }, { observer: this.#observer, tx: this.#tx });
  }

  setMode(): void {
    // One database role serves reads and writes; there is no reader replica to switch to.
  }

  generateId(): string {
    return randomUUID();
  }

  async withTransaction<TResult>(callback: (txRepo: this) => Promise<TResult>, options?: TransactionOptions): Promise<TResult> {
    if (this.#tx) return callback(this); // nested: join the open transaction
    return this.db.transaction(
      (tx) => callback(new PostgresRepository(this.db, this.context, { observer: this.#observer, tx }) as this),
      { isolation: options?.serializable ? 'serializable' : 'read committed' },
    );
  }

  async createResource<T extends Resource>(resource: T, options?: CreateResourceOptions): Promise<WithId<T>> {
    this.#allow(resource.resourceType, 'c');
    const id = options?.assignedId && resource.id ? resource.id : this.generateId();
    return this.#write({ ...resource, id }, 1, 'create');
  }

  async updateResource<T extends Resource>(resource: T, options?: UpdateResourceOptions): Promise<WithId<T>> {
    this.#allow(resource.resourceType, 'u');
    if (!resource.id || !ID_PATTERN.test(resource.id)) {
      throw new OperationOutcomeError(badRequest('Missing or invalid id', `${resource.resourceType}.id`));
    }
    return this.withTransaction(async (repo) => {
      const key = repo.#key(resource.resourceType, resource.id!);
      const current = await selectCurrent(repo.conn, key, true);
      if (!current || current.deleted) repo.#allow(resource.resourceType, 'c'); // this update creates
      assertVersionMatches(current, options?.ifMatch);
      // Update on an unknown id creates it with the client's id (CapabilityStatement: updateCreate).
      return repo.#write(resource, current ? current.versionId + 1 : 1, current && !current.deleted ? 'update' : 'create');
    });
  }

  async patchResource<T extends Resource>(
    resourceType: T['resourceType'],
    id: string,
    patch: Operation[] | Parameters,
    options?: UpdateResourceOptions,
  ): Promise<WithId<T>> {
    this.#allow(resourceType, 'u');
    assertWellFormedPatch(patch);
    return this.withTransaction(async (repo) => {
      const current = await selectCurrent(repo.conn, repo.#key(resourceType, id), true);
      const stored = liveContent(current, resourceType, id) as T;
      assertVersionMatches(current, options?.ifMatch);
      // As the client may see it (a fresh parse, so patched in place): the patch never reads what is hidden.
      const resource = (repo.#observer?.conceal ? repo.#observer.conceal(stored) : stored) as T;
      applyPatchOrRefuse(resource, patch);
      if (resource.resourceType !== resourceType || resource.id !== id) {
        throw new OperationOutcomeError(badRequest('A patch cannot change resourceType or id'));
      }
      return repo.#write(resource, current!.versionId + 1, 'update');
    });
  }

  async deleteResource(resourceType: string, id: string, options?: DeleteResourceOptions): Promise<void> {
    this.#allow(resourceType, 'd');
    await this.withTransaction(async (repo) => {
      const key = repo.#key(resourceType, id);
      const current = await selectCurrent(repo.conn, key, true);
      if (!current) throw new OperationOutcomeError(notFound);
      if (current.deleted) return; // deleting a deleted resource is a no-op success
      assertVersionMatches(current, options?.ifMatch);
      const versionId = current.versionId + 1;
      const change = { tenantId: key.tenantId, access: repo.context.access, interaction: 'delete' as const, resource: JSON.parse(current.content), versionId };
      const work = await repo.#observer?.plan(repo.conn, change);
      await writeVersion(repo.conn, {
        key,
        versionId,
        lastUpdated: new Date().toISOString(),
        deleted: true,
        content: current.content,
        interaction: 'delete',
      });
      await work?.(repo.conn);
    });
  }

  async readResource<T extends Resource>(resourceType: string, id: string): Promise<WithId<T>> {
    this.#allow(resourceType, 'r');
    if (!ID_PATTERN.test(id)) throw new OperationOutcomeError(notFound);
    return liveContent(await selectCurrent(this.conn, this.#key(resourceType, id)), resourceType, id) as WithId<T>;
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
    for (const type of byType.keys()) this.#allow(type, 'r');
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
    this.#allow(resourceType, 'r');
    const versionId = Number(vid);
    if (!Number.isInteger(versionId) || versionId < 1 || !ID_PATTERN.test(id)) throw new OperationOutcomeError(notFound);
    const version = await selectVersion(this.conn, this.#key(resourceType, id), versionId);
    if (!version) throw new OperationOutcomeError(notFound);
    if (version.deleted) throw new OperationOutcomeError(gone);
    return JSON.parse(version.content);
  }

  async readHistory<T extends Resource>(resourceType: string, id: string, options?: ReadHistoryOptions): Promise<Bundle<WithId<T>>> {
    this.#allow(resourceType, 'r');
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
    this.#allow(resourceType, 's');
    return historyBundle(this, { ...options, resourceType });
  }

  async search<T extends Resource>(searchRequest: SearchRequest<T>): Promise<Bundle<WithId<T>>> {
    if (searchRequest.types?.length) {
      for (const type of searchRequest.types) this.#allow(type, 's');
      return searchSystem(this, searchRequest) as Promise<Bundle<WithId<T>>>;
    }
    this.#allow(searchRequest.resourceType, 's');
    return searchResources(this, searchRequest) as Promise<Bundle<WithId<T>>>;
  }

  /** A chain or `_has` reads another type's index: the caller needs search scope on that type too. */
  allowSearchOf(resourceType: string): void {
    this.#allow(resourceType, 's');
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

  // Conditional interactions without criteria would act on whichever resource happens to be alone.
  override conditionalDelete(search: SearchRequest): Promise<void> {
    assertHasCriteria(search);
    return super.conditionalDelete(search);
  }

  override conditionalPatch(search: SearchRequest, patch: Operation[], options?: UpdateResourceOptions): Promise<WithId<Resource>> {
    assertHasCriteria(search);
    return super.conditionalPatch(search, patch, options);
  }

  /**
   * No match and an id in the body: an update of that id, which creates it (R4 conditional update;
   * updateCreate). FhirRepository refuses a client id there.
   */
  override async conditionalUpdate<T extends Resource>(
    resource: T,
    search: SearchRequest,
    options?: CreateResourceOptions & UpdateResourceOptions,
  ): Promise<{ resource: WithId<T>; outcome: OperationOutcome }> {
    assertHasCriteria(search);
    if (!resource.id || options?.assignedId) return super.conditionalUpdate(resource, search, options);
    if (search.resourceType !== resource.resourceType) {
      throw new OperationOutcomeError(badRequest('Search type must match resource type for conditional update'));
    }
    return this.withTransaction(async (repo) => {
      const matches = await repo.searchResources({ ...search, count: 2, offset: 0, sortRules: undefined });
      if (matches.length > 1) throw new OperationOutcomeError(preconditionFailed);
      if (matches.length === 1 && matches[0].id !== resource.id) {
        throw new OperationOutcomeError(badRequest('Resource ID did not match resolved ID', `${resource.resourceType}.id`));
      }
      const written = await repo.updateResource(resource, options);
      return { resource: written, outcome: PostgresRepository.created(written) ? created : allOk };
    }, { serializable: true, resourceTypes: [resource.resourceType as ResourceType] });
  }

  /** A match is a read: without `r` the answer is 200 with an OperationOutcome naming no id (R4 allows it). */
  override async conditionalCreate<T extends Resource>(resource: T, search: SearchRequest<T>, options?: CreateResourceOptions) {
    const result = await super.conditionalCreate(resource, search, options);
    if (getStatus(result.outcome) !== 200 || this.context.access.allows(resource.resourceType, 'r')) return result;
    const text = `A ${resource.resourceType} matching If-None-Exist exists, so nothing was created; reading it needs system/${resource.resourceType}.r`;
    const outcome: OperationOutcome = { ...allOk, issue: [{ severity: 'information', code: 'informational', details: { text } }] };
    return { resource: undefined as unknown as WithId<T>, outcome };
  }

  /** 404 for a type we do not serve, then 403 unless the caller's scopes allow the interaction. */
  #allow(resourceType: string, interaction: ScopeInteraction): void {
    assertSupportedType(resourceType);
    assertAllowed(this.context.access, resourceType, interaction);
  }

  #key(resourceType: string, id: string): ResourceKey {
    return { tenantId: this.context.tenantId, resourceType, id };
  }

  /**
   * Stamps id and meta, validates, indexes and stores one version, with whatever the observer
   * (Subscriptions) must record in the same transaction. A write nobody observes is one statement,
   * atomic on its own, so it needs no BEGIN/COMMIT round trips outside a caller's transaction.
   */
  async #write<T extends Resource>(resource: T, versionId: number, interaction: Interaction): Promise<WithId<T>> {
    const { id, meta, resourceType, ...elements } = resource;
    let stored = {
      resourceType,
      id,
      meta: { ...meta, versionId: String(versionId), lastUpdated: new Date().toISOString() },
      ...elements,
    } as WithId<T>;
    if (this.#observer) stored = (await this.#observer.prepare(stored, { conn: this.conn, tenantId: this.context.tenantId })) as WithId<T>;
    // Never stored as text: each `Type?criteria` becomes the Type/id of its one match, or a 4xx.
    await resolveConditionalReferences(stored, (request) => this.searchResources(request));
    validateResource(stored);
    const change = { tenantId: this.context.tenantId, access: this.context.access, interaction, resource: stored, versionId };
    const work = await this.#observer?.plan(this.conn, change);
    const store = async (conn: Queryable): Promise<void> => {
      await writeVersion(conn, {
        key: this.#key(resourceType, id!),
        versionId,
        lastUpdated: stored.meta!.lastUpdated!,
        deleted: false,
        content: JSON.stringify(stored),
        interaction,
        index: extractSearchIndex(stored, this.localBases),
      });
      await work?.(conn);
    };
    try {
      await (work && !this.#tx ? this.withTransaction((repo) => store(repo.conn)) : store(this.conn));
    } catch (err) {
      if ((err as { code?: string }).code === '23505') {
        throw new OperationOutcomeError(conflict(`${resourceType}/${id} was written concurrently; retry`));
      }
      throw err;
    }
    if (interaction === 'create') createdResources.add(stored);
    return stored;
  }
}

/** The resources the writes of this process created, for the 201 of a PUT (weak: no leak). */
const createdResources = new WeakSet<Resource>();

function assertSupportedType(resourceType: string): void {
  if (!supportedTypes.has(resourceType)) {
    throw notFoundError(`Resource type ${resourceType} is not supported by this server`);
  }
}

function assertHasCriteria(search: SearchRequest): void {
  if (!search.filters?.length) {
    throw new OperationOutcomeError(badRequest('A conditional interaction needs search criteria'));
  }
}

function assertVersionMatches(current: StoredVersion | undefined, ifMatch: string | undefined): void {
  // The router passes what it found between quotes: anything but a version number is no lock at all.
  if (ifMatch !== undefined && !/^\d{1,15}$/.test(ifMatch)) throw new OperationOutcomeError(badRequest('If-Match must name a version, such as W/"3"'));
  if (ifMatch !== undefined && (!current || String(current.versionId) !== ifMatch)) {
    throw new OperationOutcomeError(preconditionFailed);
  }
}

function liveContent(current: StoredVersion | undefined, resourceType: string, id: string): Resource {
  if (!current) throw new OperationOutcomeError(notFound);
  if (current.deleted) throw new OperationOutcomeError(gone);
  const resource = JSON.parse(current.content) as Resource;
  if (!isResource(resource) || resource.resourceType !== resourceType || resource.id !== id) {
    throw new Error(`Stored content of ${resourceType}/${id} is corrupt`);
  }
  return resource;
}
