/** The REST shapes of `/v1/calendars`: exclusion calendars of whole local days (calendar.ts). */
import { Type, type Static } from 'typebox';
import { MAX_CALENDAR_DATES, MAX_CALENDAR_RANGES } from './calendar.ts';
import { Id, Instant, Nullable, Ref } from './schemas.ts';

const CalendarDate = Type.String({
  pattern: '^\\d{4}-\\d{2}-\\d{2}$',
  description: 'A whole local day, `YYYY-MM-DD` (years 1900–9999).',
  examples: ['2026-12-25'],
});

export const CalendarRangeSchema = Type.Object(
  { from: CalendarDate, to: CalendarDate },
  {
    $id: 'CalendarRange',
    additionalProperties: false,
    description: 'Whole local days from `from` to `to`, both included; `from` ≤ `to`.',
  },
);

const CalendarFields = {
  name: Type.String({ minLength: 1, maxLength: 200, description: 'Unique within your service.' }),
  timezone: Type.String({
    minLength: 1,
    maxLength: 64,
    description: 'The IANA time zone whose wall clock tells which day an instant falls on (default `UTC`).',
  }),
  dates: Type.Array(CalendarDate, {
    maxItems: MAX_CALENDAR_DATES,
    description: `Excluded days (at most ${MAX_CALENDAR_DATES}); stored sorted, each once.`,
  }),
  ranges: Type.Array(Ref(CalendarRangeSchema), {
    maxItems: MAX_CALENDAR_RANGES,
    description: `Excluded spans of days (at most ${MAX_CALENDAR_RANGES}).`,
  }),
};

export const CreateCalendarBody = Type.Object(
  {
    name: CalendarFields.name,
    timezone: Type.Optional(CalendarFields.timezone),
    dates: Type.Optional(CalendarFields.dates),
    ranges: Type.Optional(CalendarFields.ranges),
  },
  { $id: 'CreateCalendarRequest', additionalProperties: false },
);
export type CreateCalendarBody = Static<typeof CreateCalendarBody>;

export const PatchCalendarBody = Type.Object(
  {
    name: Type.Optional(CalendarFields.name),
    timezone: Type.Optional(CalendarFields.timezone),
    dates: Type.Optional(CalendarFields.dates),
    ranges: Type.Optional(CalendarFields.ranges),
  },
  {
    $id: 'PatchCalendarRequest',
    additionalProperties: false,
    description: 'Fields sent replace the stored ones; `dates` and `ranges` are replaced whole.',
  },
);
export type PatchCalendarBody = Static<typeof PatchCalendarBody>;

export const CalendarSchema = Type.Object(
  {
    id: Id,
    name: CalendarFields.name,
    timezone: CalendarFields.timezone,
    dates: CalendarFields.dates,
    ranges: CalendarFields.ranges,
    createdAt: Instant,
    updatedAt: Instant,
  },
  { $id: 'Calendar', description: 'An exclusion calendar: the days a job that lists it does not fire.' },
);
export type CalendarDto = Static<typeof CalendarSchema>;

export const CalendarListSchema = Type.Object(
  {
    items: Type.Array(Ref(CalendarSchema)),
    nextCursor: Nullable(Type.String({ description: 'Pass it as `cursor` for the next page; null on the last page.' })),
  },
  { $id: 'CalendarList' },
);

export const CALENDAR_NAMED_SCHEMAS = [
  CalendarRangeSchema,
  CreateCalendarBody,
  PatchCalendarBody,
  CalendarSchema,
  CalendarListSchema,
] as const;
