import { call, qs } from '../api.js';
import { html, useLoad, Loading, Chart, age, money, href } from '../ui.js';

export function Overview({ ctx }) {
  const state = useLoad(() => call(`/admin/overview${qs({ tenant: ctx.adminTenant, hours: 24 })}`), [ctx.adminTenant]);
  return html`<h1 tabindex="-1">Overview</h1>
    <${Loading} state=${state}>${(o) => {
      const hours = o.hours.map((h) => h.hour);
      const sum = (k) => o.hours.reduce((n, h) => n + h[k], 0);
      const failedIn = (o.inboundByStatus.failed ?? 0) + (o.inboundByStatus.refused ?? 0);
      return html`
        <section class="cards" aria-label="Last 24 hours">
          <a class="card" href=${href('inbound')}><strong>${sum('messagesIn')}</strong> messages in</a>
          <a class="card ${failedIn ? 'bad' : ''}" href=${href('inbound', { status: 'failed' })}><strong>${failedIn}</strong> refused or failed</a>
          <a class="card" href=${href('deliveries')}><strong>${sum('notificationsOut')}</strong> delivery attempts</a>
          <a class="card ${o.subscriptionsInError ? 'bad' : ''}" href=${href('deliveries')}><strong>${o.subscriptionsInError}</strong> subscriptions in error</a>
          <a class="card ${o.deadNotifications ? 'bad' : ''}" href=${href('deliveries')}><strong>${o.deadNotifications}</strong> dead notifications</a>
          <a class="card ${o.waitingPayments ? 'warn' : ''}" href=${href('waiting')}><strong>${o.waitingPayments}</strong> waiting payments${o.oldestWaitingPayment ? html`<br />oldest ${age(o.oldestWaitingPayment.ageSeconds)} old: bill ${o.oldestWaitingPayment.billId}, ${money(o.oldestWaitingPayment.amount, o.oldestWaitingPayment.currency ?? o.currency)}` : ''}</a>
        </section>
        <div class="charts">
          <${Chart} title="Messages in per hour" hours=${hours}
            summary=${`${sum('messagesIn')} messages, ${sum('inboundFailures')} refused or failed, in 24 hours`}
            series=${[{ label: 'Messages in', values: o.hours.map((h) => h.messagesIn), stroke: '#1d4ed8' }, { label: 'Refused or failed', values: o.hours.map((h) => h.inboundFailures), stroke: '#b91c1c' }]} />
          <${Chart} title="Notifications out per hour" hours=${hours}
            summary=${`${sum('notificationsOut')} attempts, ${sum('deliveryFailures')} failed, in 24 hours`}
            series=${[{ label: 'Attempts', values: o.hours.map((h) => h.notificationsOut), stroke: '#047857' }, { label: 'Failed', values: o.hours.map((h) => h.deliveryFailures), stroke: '#b91c1c' }]} />
        </div>`;
    }}<//>`;
}
