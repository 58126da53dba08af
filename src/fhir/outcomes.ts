import { OperationOutcomeError, notFound } from '@medplum/core';
import type { OperationOutcome } from '@medplum/fhirtypes';

/** A 404 that says what was not found (core's `notFound` says only "Not found"). */
export function notFoundError(text: string): OperationOutcomeError {
  const outcome: OperationOutcome = { ...notFound, issue: [{ severity: 'error', code: 'not-found', details: { text } }] };
  return new OperationOutcomeError(outcome);
}

/** The OperationOutcome for a failure we did not foresee: the details go to the log, not the client. */
export const internalErrorOutcome: OperationOutcome = {
  resourceType: 'OperationOutcome',
  issue: [{ severity: 'error', code: 'exception', details: { text: 'Internal server error' } }],
};

export function outcome(severity: 'error' | 'warning' | 'information', code: string, text: string, expression?: string): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    issue: [{ severity, code: code as 'invalid', details: { text }, ...(expression && { expression: [expression] }) }],
  };
}
