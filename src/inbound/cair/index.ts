import { jsonSchema, ref } from '../openapi.ts';
import type { Sender } from '../sender.ts';
import { PATIENT_PAYMENT_PATH, SOURCE, cairRoutes } from './routes.ts';
import { ErrorMessage, InvalidRequestBody, PatientPaymentBody, PatientPaymentSuccess, ProcessingFailure } from './schema.ts';

/** Cair Health: the patient-payment webhook (shared/seeds/000). */
export const cair: Sender = {
  name: SOURCE,
  router: cairRoutes,
  openapi: () => ({
    schemas: {
      PatientPaymentRequest: jsonSchema(PatientPaymentBody, 'input'),
      PatientPaymentResponse: jsonSchema(PatientPaymentSuccess, 'output'),
      InvalidRequestBody: jsonSchema(InvalidRequestBody, 'output'),
      Error: jsonSchema(ErrorMessage, 'output'),
      ProcessingFailure: jsonSchema(ProcessingFailure, 'output'),
    },
    paths: {
      [PATIENT_PAYMENT_PATH]: {
        post: {
          operationId: 'postPatientPayment',
          tags: ['Webhooks'],
          summary: 'Record a patient payment against a claim',
          description:
            'Finds the Claim whose claim-id identifier is billId, applies the payment up to the open patient responsibility of its lifecycle ' +
            '(from the most recent active ClaimResponse) and keeps any excess as an unallocated PatientCredit. Idempotent: the same payment ' +
            'again (same paymentTraceId, or without one the same billId, amount, date and method) returns the first result; the same ' +
            'paymentTraceId with another amount updates that payment (the difference is applied or given back).',
          security: [{ bearerAuth: [] }],
          requestBody: { required: true, content: { 'application/json': { schema: ref('PatientPaymentRequest') } } },
          responses: {
            '200': { description: 'Payment processed successfully', content: { 'application/json': { schema: ref('PatientPaymentResponse') } } },
            '400': { description: 'The request body is invalid (every problem is listed), including malformed JSON', content: { 'application/json': { schema: ref('InvalidRequestBody') } } },
            '401': {
              description: 'Missing, invalid or expired access token: {"error": "Invalid or expired access token"}',
              content: { 'application/json': { schema: ref('Error') } },
            },
            '403': { description: "The token's client lacks the webhook scope (or system/PaymentReconciliation.c)", content: { 'application/json': { schema: ref('Error') } } },
            '404': { description: 'No claim for the billId: {"error": "Claim not found for billId: 12345"}', content: { 'application/json': { schema: ref('Error') } } },
            '413': { description: 'The request body is larger than 64 KiB', content: { 'application/json': { schema: ref('InvalidRequestBody') } } },
            '500': { description: 'The payment could not be processed; nothing was recorded', content: { 'application/json': { schema: ref('ProcessingFailure') } } },
          },
        },
      },
    },
  }),
};
