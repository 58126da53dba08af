import { z } from 'zod';

/**
 * The InstaMed webhook's fields we read, by what they mean, with the sender's key as the default
 * (shared/research/senders-and-standards.md §1: the JSON keys of a real receiver). The whole map
 * is a source option (`fieldMap`), because the sender's field table is not fully public; keys
 * match case-insensitively, so the same map reads PascalCase JSON/XML and camelCase NVP.
 */
export const DEFAULT_FIELD_MAP = {
  transactionId: 'PaymentTransactionID',
  originalTransactionId: 'OriginalTransactionID',
  statusCode: 'CurrentTransactionStatusCode',
  statusDescription: 'CurrentTransactionStatusDescription',
  action: 'TransactionAction',
  transactionType: 'TransactionType',
  amount: 'Amount',
  requestAmount: 'RequestAmount',
  partialApprovalAmount: 'PartialApprovalAmount',
  isPartiallyApproved: 'IsPartiallyApproved',
  responseDateTime: 'ResponseDateTime',
  patientId: 'PatientID',
  patientMrn: 'PatientMedicalRecordNumber',
  patientFirstName: 'PatientFirstName',
  patientLastName: 'PatientLastName',
  patientBirthDate: 'PatientBirthDate',
  guarantorId: 'GuarantorID',
  accountHolderEmail: 'AccountHolderEmail',
  cardType: 'CardType',
  cardLastFour: 'CardLastFourDigits',
  accountNumberLastFour: 'AccountNumberLastFourDigits',
  authorizationCode: 'AuthorizationCode',
  paymentPlanId: 'PaymentPlanID',
  paymentPlanTransactionType: 'PaymentPlanTransactionType',
  installmentSequenceNumber: 'InstallmentSequenceNumber',
  installmentCount: 'InstallmentCount',
  merchantId: 'MerchantID',
} as const;

export type Field = keyof typeof DEFAULT_FIELD_MAP;
export type FieldMap = Record<Field, string>;

export const DEFAULT_BILL_ID_FIELD = 'AdditionalCode1';

const FieldName = z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,63}$/, 'a field name: letters, digits, _ . -');

export const FieldMapOption = z
  .object(Object.fromEntries(Object.keys(DEFAULT_FIELD_MAP).map((k) => [k, FieldName.optional()])) as Record<Field, z.ZodOptional<typeof FieldName>>)
  .strict();

/** The map a source reads with: its overrides over the defaults. */
export function fieldMapOf(overrides: Partial<FieldMap> | undefined): FieldMap {
  return { ...DEFAULT_FIELD_MAP, ...overrides };
}

/** A message's fields, keys lower-cased; empty values are absent. */
export type Fields = ReadonlyMap<string, string>;

export function reader(fields: Fields, map: FieldMap, billIdField: string) {
  const get = (name: string): string | undefined => fields.get(name.toLowerCase());
  return {
    get: (field: Field): string | undefined => get(map[field]),
    billId: (): string | undefined => get(billIdField),
    billIdField,
    /** The name the sender uses for a field, for messages that point at it. */
    nameOf: (field: Field): string => map[field],
  };
}

export type Reader = ReturnType<typeof reader>;
