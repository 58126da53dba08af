import { randomUUID } from 'node:crypto';
import { OperationOutcomeError, allOk, badRequest, conflict, created, getStatus, notFound, preconditionFailed } from '@medplum/core';
import type { Operation, SearchRequest, WithId } from '@medplum/core';
import type { CreateResourceOptions, DeleteResourceOptions, TransactionOptions, UpdateResourceOptions } from '@medplum/fhir-router';
import type { OperationOutcome, Parameters, Resource, ResourceType } from '@medplum/fhirtypes';
import type { Database, Queryable } from '../db/index.ts';
import { validateResource } from '../profiles/index.ts';
import { extractSearchIndex } from './search/index-values.ts';
import type { ChangeObserver } from './change-observer.ts';
import type { AccessPolicy } from './access.ts';
import { resolveConditionalReferences } from './references.ts';
import { applyPatchOrRefuse, assertWellFormedPatch } from './patch.ts';
import { ResourceReader, ID_PATTERN, liveContent } from './repository-reads.ts';
import type { RequestContext } from './repository-reads.ts';
import { selectCurrent, writeVersion } from './storage.ts';
import type { Interaction, StoredVersion } from './storage.ts';

export type { RequestContext };

/**
 * The FHIR repository on PostgreSQL that @medplum/fhir-router's FhirRouter drives. One instance per
 * request, carrying the tenant; inside `withTransaction` a second instance shares the transaction.
 * The reads, history and search are ResourceReader's (repository-reads.ts); here are the writes.
 */
export class PostgresRepository extends ResourceReader {
  readonly #observer: ChangeObserver | undefined;

  constructor(db: Database, context: RequestContext, options: { observer?: ChangeObserver; tx?: Queryable } = {}) {
    super(db, context, options.tx);
    this.#observer = options.observer;
  }

  /**
   * Whether this write created the resource: version 1, or the first version after a delete
   * (a PUT that re-creates a deleted resource answers 201, as a create does).
   */
  static created(resource: Resource): boolean {
    return createdResources.has(resource);
  }

  /**
   * This repository (tenant, observer, open transaction) with another access policy: for the
   * server's own writes on behalf of a caller whose scopes were checked (billing's FHIR operations).
   */
  withAccess(access: AccessPolicy): PostgresRepository {
    return new PostgresRepository(this.db, { ...this.context, access }, { observer: this.#observer, tx: this.tx });
  }

  setMode(): void {
    // One database role serves reads and writes; there is no reader replica to switch to.
  }

  generateId(): string {
    return randomUUID();
  }

  async withTransaction<TResult>(callback: (txRepo: this) => Promise<TResult>, options?: TransactionOptions): Promise<TResult> {
    if (this.tx) return callback(this); // nested: join the open transaction
    return this.db.transaction(
      (tx) => callback(new PostgresRepository(this.db, this.context, { observer: this.#observer, tx }) as this),
      { isolation: options?.serializable ? 'serializable' : 'read committed' },
    );
  }

  async createResource<T extends Resource>(resource: T, options?: CreateResourceOptions): Promise<WithId<T>> {
    this.allow(resource.resourceType, 'c');
    const id = options?.assignedId && resource.id ? resource.id : this.generateId();
    return this.#write({ ...resource, id }, 1, 'create');
  }

  async updateResource<T extends Resource>(resource: T, options?: UpdateResourceOptions): Promise<WithId<T>> {
    this.allow(resource.resourceType, 'u');
    if (!resource.id || !ID_PATTERN.test(resource.id)) {
      throw new OperationOutcomeError(badRequest('Missing or invalid id', `${resource.resourceType}.id`));
    }
    return this.withTransaction(async (repo) => {
      const key = repo.key(resource.resourceType, resource.id!);
      const current = await selectCurrent(repo.conn, key, true);
      if (!current || current.deleted) repo.allow(resource.resourceType, 'c'); // this update creates
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
    this.allow(resourceType, 'u');
    assertWellFormedPatch(patch);
    return this.withTransaction(async (repo) => {
      const current = await selectCurrent(repo.conn, repo.key(resourceType, id), true);
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
    this.allow(resourceType, 'd');
    await this.withTransaction(async (repo) => {
      const key = repo.key(resourceType, id);
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
    if (this.#observer) stored = (await this.#observer.prepare(stored, { conn: this.conn, tenantId: this.context.tenantId, access: this.context.access })) as WithId<T>;
    // Never stored as text: each `Type?criteria` becomes the Type/id of its one match, or a 4xx.
    await resolveConditionalReferences(stored, (request) => this.searchResources(request));
    validateResource(stored);
    const change = { tenantId: this.context.tenantId, access: this.context.access, interaction, resource: stored, versionId };
    const work = await this.#observer?.plan(this.conn, change);
    const store = async (conn: Queryable): Promise<void> => {
      await writeVersion(conn, {
        key: this.key(resourceType, id!),
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
      await (work && !this.tx ? this.withTransaction((repo) => store(repo.conn)) : store(this.conn));
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

