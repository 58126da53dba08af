import type { CapabilityStatement, CapabilityStatementRestResource } from '@medplum/fhirtypes';
import { SUPPORTED_RESOURCE_TYPES } from '../profiles/index.ts';
import { searchableParameters } from './search/parameters.ts';

const TOPIC_CANONICAL_EXTENSION =
  'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/capabilitystatement-subscriptiontopic-canonical';
const BACKPORT_OPERATIONS = 'http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition';

const INTERACTIONS = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'] as const;

/** `GET /fhir/metadata`: what this server does, per type, derived from the same tables the code uses. */
export interface CapabilityOptions {
  version: string;
  subscriptionTopics: string[];
  /** Absolute URL of the OAuth 2.0 token endpoint (SMART Backend Services). */
  tokenUrl: string;
}

export function buildCapabilityStatement(baseUrl: string, options: CapabilityOptions): CapabilityStatement {
  const { version, subscriptionTopics } = options;
  const resource: CapabilityStatementRestResource[] = SUPPORTED_RESOURCE_TYPES.map((type) => ({
    type: type as CapabilityStatementRestResource['type'],
    ...(type === 'PatientCredit' && { profile: 'https://fhir-billing.org/fhir/StructureDefinition/PatientCredit' }),
    interaction: INTERACTIONS.map((code) => ({ code })),
    versioning: 'versioned-update',
    readHistory: true,
    updateCreate: true,
    conditionalRead: 'full-support', // If-None-Match and If-Modified-Since (304)
    conditionalCreate: true,
    conditionalUpdate: true,
    conditionalPatch: true,
    conditionalDelete: 'single',
    searchInclude: ['*'],
    searchRevInclude: ['*'],
    searchParam: [...searchableParameters(type).values()].map((p) => ({
      name: p.code,
      ...(p.definition.url && { definition: p.definition.url }),
      type: p.type,
      ...(p.definition.description && { documentation: p.definition.description }),
    })),
    operation: [
      { name: 'validate', definition: 'http://hl7.org/fhir/OperationDefinition/Resource-validate' },
      ...(type === 'Patient' ? [{ name: 'everything', definition: 'http://hl7.org/fhir/OperationDefinition/Patient-everything' }] : []),
      // billing/operations.ts
      ...(type === 'PatientCredit' ? [{ name: 'allocate', definition: 'https://fhir-billing.org/fhir/OperationDefinition/PatientCredit-allocate' }] : []),
    ],
    ...(type === 'Subscription' && {
      // Backport IG: the topics a client may subscribe to, and its operations.
      extension: subscriptionTopics.map((url) => ({ url: TOPIC_CANONICAL_EXTENSION, valueCanonical: url })),
      operation: [
        { name: 'validate', definition: 'http://hl7.org/fhir/OperationDefinition/Resource-validate' },
        { name: 'status', definition: `${BACKPORT_OPERATIONS}/backport-subscription-status` },
        { name: 'events', definition: `${BACKPORT_OPERATIONS}/backport-subscription-events` },
        { name: 'resend', definition: `${BACKPORT_OPERATIONS}/backport-subscription-resend` },
      ],
    }),
  }));
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'fhir-billing', version },
    implementation: { description: 'fhir-billing FHIR R4 server', url: baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json', 'json'],
    patchFormat: ['application/json-patch+json', 'application/fhir+json'], // JSON Patch and FHIRPath Patch
    rest: [
      {
        mode: 'server',
        security: {
          // SMART App Launch's way of telling clients where to get tokens (oauth-uris extension).
          cors: false,
          service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
          description: 'Bearer access tokens from the token endpoint (client credentials or SMART Backend Services); SMART system scopes',
          extension: [
            {
              url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
              extension: [{ url: 'token', valueUri: options.tokenUrl }],
            },
          ],
        },
        resource,
        interaction: [{ code: 'transaction' }, { code: 'batch' }, { code: 'search-system' }, { code: 'history-system' }],
        // System search takes _type with the parameters every named type has (search/system.ts).
        searchParam: [
          { name: '_type', type: 'token', documentation: 'The types to search; every other parameter must be one each type has' },
          { name: '_id', type: 'token' },
          { name: '_lastUpdated', type: 'date' },
        ],
        compartment: ['http://hl7.org/fhir/CompartmentDefinition/patient'],
      },
    ],
  };
}
