import type { Sender } from '../sender.ts';
import { REMITTANCES_PATH, SOURCE, SOURCE_PATH, x12Routes } from './routes.ts';

const error = { type: 'object', properties: { error: { type: 'string' }, segment: { type: 'string' }, position: { type: 'integer' } }, required: ['error'] };
const summary = {
  type: 'object',
  properties: {
    traceNumber: { type: 'string' }, payerId: { type: 'string' }, status: { type: 'string', enum: ['created', 'unchanged'] },
    paymentAmount: { type: 'string' }, paymentReconciliationId: { type: 'string' }, claims: { type: 'integer' }, applied: { type: 'integer' }, waiting: { type: 'integer' },
  },
};

const operation = (operationId: string, security: unknown[]) => ({
  operationId,
  tags: ['Remittances'],
  summary: 'Import a payer remittance (X12 835, 005010X221A1)',
  description:
    'Each transaction set becomes a PaymentReconciliation (the payer trace TRN02 as identifier) and each CLP a ClaimResponse on the Claim ' +
    'whose claim-id is CLP01 (or waits for that Claim). The envelope (ISA/IEA, GS/GE, ST/SE counts and control numbers) and the balance ' +
    '(BPR02 = sum of CLP04 less PLB) are checked; a refused file writes nothing. The same trace again changes nothing.',
  security,
  requestBody: { required: true, content: { 'application/edi-x12': { schema: { type: 'string' } }, 'text/plain': { schema: { type: 'string' } } } },
  responses: {
    '200': { description: 'Every trace in the file was imported before; nothing changed', content: { 'application/json': { schema: { $ref: '#/components/schemas/RemittanceImport' } } } },
    '201': { description: 'Imported', content: { 'application/json': { schema: { $ref: '#/components/schemas/RemittanceImport' } } } },
    '400': { description: 'Not a well-formed 835: the message names the segment and its position', content: { 'application/json': { schema: { $ref: '#/components/schemas/RemittanceError' } } } },
    '401': { description: 'Missing or invalid credentials', content: { 'application/json': { schema: { $ref: '#/components/schemas/RemittanceError' } } } },
    '403': { description: 'The token lacks the webhook scope', content: { 'application/json': { schema: { $ref: '#/components/schemas/RemittanceError' } } } },
    '409': { description: 'A payer trace imported before with other content', content: { 'application/json': { schema: { $ref: '#/components/schemas/RemittanceError' } } } },
    '429': { description: 'Too many failed Basic attempts at a webhook source (Retry-After says when to try again)', content: { 'application/json': { schema: { $ref: '#/components/schemas/RemittanceError' } } } },
    '413': { description: 'The file is too large', content: { 'application/json': { schema: { $ref: '#/components/schemas/RemittanceError' } } } },
    '422': { description: 'The payment does not balance (the difference is shown), or a claim cannot be booked', content: { 'application/json': { schema: { $ref: '#/components/schemas/RemittanceError' } } } },
  },
});

/** Payer remittances: the X12 835 (issue 15). */
export const x12835: Sender = {
  name: SOURCE,
  router: x12Routes,
  openapi: () => ({
    schemas: { RemittanceImport: { type: 'object', properties: { remittances: { type: 'array', items: summary } } }, RemittanceError: error },
    paths: {
      [REMITTANCES_PATH]: { post: operation('postRemittance', [{ bearerAuth: [] }]) },
      [SOURCE_PATH.replace(':sourceId', '{sourceId}')]: {
        post: { ...operation('postRemittanceToSource', [{ basicAuth: [] }, { bearerAuth: [] }]), parameters: [{ name: 'sourceId', in: 'path', required: true, schema: { type: 'string' } }] },
      },
    },
  }),
};
