/** An 835 of `matched` claims that exist and `waiting` ones that do not (yet), each CLP about 200 bytes. */
export function big835(prefix: string, matched: number, waiting: number): string {
  const segs: string[] = [];
  const n = matched + waiting;
  segs.push('ST*835*0001*005010X221A1', `BPR*I*${(150 * n).toFixed(2)}*C*ACH*CCP*01*999999992*DA*123456*1512345678**01*999988880*DA*98765*20240510`,
    `TRN*1*${prefix}*1512345678`, 'N1*PR*ACME HEALTH PLAN*XV*ACME01', 'N1*PE*CITY CLINIC*XX*1234567893', 'LX*1');
  for (let i = 0; i < n; i++) {
    segs.push(`CLP*${i < matched ? prefix : `${prefix}-NOT-HERE`}-${i}*1*200*150*30*12*PCC-${prefix}-${i}*11*1`, 'CAS*CO*45*20', 'CAS*PR*2*30',
      'NM1*QC*1*DOE*JANE****MI*W123456789', 'SVC*HC:99213*200*150**1', 'CAS*CO*45*20', 'CAS*PR*2*30', 'REF*6R*1');
  }
  segs.push(`SE*${segs.length + 1}*0001`);
  return ['ISA*00*          *00*          *ZZ*ACMEHEALTHPLAN *ZZ*CITYCLINIC     *240510*1200*^*00501*000000900*0*P*:',
    'GS*HP*ACMEHEALTHPLAN*CITYCLINIC*20240510*1200*900*X*005010X221A1', ...segs, 'GE*1*900', 'IEA*1*000000900'].map((s) => `${s}~\n`).join('');
}
