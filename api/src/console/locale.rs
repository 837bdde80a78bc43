//! The console's languages and calendars: Persian (right to left) and
//! English, dates in the Persian (Solar Hijri) or Gregorian calendar, always
//! in Tehran time (UTC+03:30; Iran has kept no daylight saving time since
//! 2022). What a page shows is chosen per browser (two cookies), with
//! `PEYK_CONSOLE_LANGUAGE` and `PEYK_CONSOLE_CALENDAR` as the defaults.

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    English,
    Persian,
}

impl Language {
    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "en" => Some(Self::English),
            "fa" => Some(Self::Persian),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::English => "en",
            Self::Persian => "fa",
        }
    }

    pub fn direction(self) -> &'static str {
        match self {
            Self::English => "ltr",
            Self::Persian => "rtl",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Calendar {
    Gregorian,
    Persian,
}

impl Calendar {
    pub fn parse(code: &str) -> Option<Self> {
        match code {
            "gregorian" => Some(Self::Gregorian),
            "persian" => Some(Self::Persian),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::Gregorian => "gregorian",
            Self::Persian => "persian",
        }
    }
}

/// Tehran's offset from UTC.
pub fn tehran() -> FixedOffset {
    FixedOffset::east_opt(3 * 3600 + 30 * 60).expect("a valid offset")
}

/// A browser's `datetime-local` value (`2026-12-05T15:42`, seconds
/// optional), read as Tehran time.
pub fn parse_tehran_time(text: &str) -> Option<DateTime<Utc>> {
    let local = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M")
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S"))
        .ok()?;
    Some(local.and_local_timezone(tehran()).single()?.with_timezone(&Utc))
}

/// `2026-12-05 15:42:10` in Tehran time, the date in `calendar`; digits in
/// Persian for `Language::Persian`.
pub fn format_time(at: DateTime<Utc>, calendar: Calendar, language: Language) -> String {
    let local = at.with_timezone(&tehran());
    let (year, month, day) = match calendar {
        Calendar::Gregorian => (local.year(), local.month(), local.day()),
        Calendar::Persian => to_persian(local.date_naive()),
    };
    let text = format!("{year:04}-{month:02}-{day:02} {}", local.format("%H:%M:%S"));
    match language {
        Language::English => text,
        Language::Persian => persian_digits(&text),
    }
}

pub fn persian_digits(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_digit() { char::from_u32('۰' as u32 + (c as u32 - '0' as u32)).unwrap_or(c) } else { c }).collect()
}

/// The Persian (Solar Hijri) year, month and day of a Gregorian date.
/// Months 1–6 have 31 days, 7–11 30, Esfand 29 or 30; the year starts at
/// Nowruz, whose March day `nowruz_in_march` gives.
pub fn to_persian(date: NaiveDate) -> (i32, u32, u32) {
    let nowruz = |gregorian_year: i32| {
        NaiveDate::from_ymd_opt(gregorian_year, 3, nowruz_in_march(gregorian_year - 621)).expect("Nowruz falls in March")
    };
    let (year, start) =
        if date >= nowruz(date.year()) { (date.year() - 621, nowruz(date.year())) } else { (date.year() - 622, nowruz(date.year() - 1)) };
    let days = (date - start).num_days() as u32;
    if days < 186 {
        (year, 1 + days / 31, 1 + days % 31)
    } else {
        (year, 7 + (days - 186) / 30, 1 + (days - 186) % 30)
    }
}

/// The day of March on which Persian year `year` begins: the break-year
/// arithmetic of Borkowski's algorithm (as in jalaali-js, `jalCal`), valid
/// for years -61 to 3177.
fn nowruz_in_march(year: i32) -> u32 {
    const BREAKS: [i32; 20] = [-61, 9, 38, 199, 426, 686, 756, 818, 1111, 1181, 1210, 1635, 2060, 2097, 2192, 2262, 2324, 2394, 2456, 3178];
    let gregorian = year + 621;
    let mut leap_persian = -14;
    let mut previous = BREAKS[0];
    let mut jump = 0;
    for &next in &BREAKS[1..] {
        jump = next - previous;
        if year < next {
            break;
        }
        leap_persian += jump / 33 * 8 + jump % 33 / 4;
        previous = next;
    }
    let n = year - previous;
    leap_persian += n / 33 * 8 + (n % 33 + 3) / 4;
    if jump % 33 == 4 && jump - n == 4 {
        leap_persian += 1;
    }
    let leap_gregorian = gregorian / 4 - (gregorian / 100 + 1) * 3 / 4 - 150;
    (20 + leap_persian - leap_gregorian) as u32
}

/// The console's words in each language, by key; a key missing from the
/// table shows as itself (a test checks every template's keys are here).
pub fn text(language: Language, key: &str) -> &str {
    match WORDS.iter().find(|(k, _, _)| *k == key) {
        Some((_, english, persian)) => match language {
            Language::English => english,
            Language::Persian => persian,
        },
        None => key,
    }
}

pub const WORDS: &[(&str, &str, &str)] = &[
    ("console", "Peyk console", "کنسول پیک"),
    ("sign_in", "Sign in", "ورود"),
    ("sign_out", "Sign out", "خروج"),
    ("api_key", "API key", "کلید API"),
    (
        "api_key_help",
        "An API key of your tenant, or an admin key. It is exchanged for a session and never stored in the browser.",
        "کلید API سازمان شما یا کلید مدیر. این کلید با یک نشست جایگزین می‌شود و در مرورگر ذخیره نمی‌شود.",
    ),
    ("bad_key", "This key is unknown, revoked or expired.", "این کلید ناشناخته، باطل یا منقضی است."),
    ("overview", "Overview", "نمای کلی"),
    ("jobs", "Jobs", "کارها"),
    ("job", "Job", "کار"),
    ("dead_letters", "Dead letters", "کارهای مرده"),
    ("queues", "Queues", "صف‌ها"),
    ("queue", "Queue", "صف"),
    ("tenant", "Tenant", "سازمان"),
    ("tenants", "Tenants", "سازمان‌ها"),
    ("waiting", "Waiting", "در انتظار"),
    ("scheduled", "Scheduled", "زمان‌بندی‌شده"),
    ("in_flight", "Running", "در حال اجرا"),
    ("paused", "Paused", "متوقف"),
    ("active", "Active", "فعال"),
    ("pause", "Pause", "توقف"),
    ("resume", "Resume", "ادامه"),
    ("live", "Updates live", "به‌روزرسانی زنده"),
    ("type", "Type", "نوع"),
    ("status", "Status", "وضعیت"),
    ("any", "Any", "همه"),
    ("filter", "Filter", "فیلتر"),
    ("find", "Find by id", "یافتن با شناسه"),
    ("created", "Created", "ایجاد"),
    ("started", "Started", "شروع"),
    ("finished", "Finished", "پایان"),
    ("attempts", "Attempts", "تلاش‌ها"),
    ("attempt", "Attempt", "تلاش"),
    ("worker", "Worker", "کارگر"),
    ("outcome", "Outcome", "نتیجه"),
    ("error", "Error", "خطا"),
    ("payload", "Payload", "ورودی"),
    ("result", "Result", "خروجی"),
    ("retry", "Retry", "تلاش دوباره"),
    ("cancel", "Cancel", "لغو"),
    ("next_page", "Next page", "صفحهٔ بعد"),
    ("no_jobs", "No jobs.", "کاری نیست."),
    ("retry_all", "Retry every dead job shown by this filter", "تلاش دوباره برای همهٔ کارهای مردهٔ این فیلتر"),
    ("confirm_retry", "Retry these dead jobs?", "این کارهای مرده دوباره اجرا شوند؟"),
    ("jobs_match", "jobs match", "کار مطابق است"),
    ("confirm", "Yes, go ahead", "بله، انجام شود"),
    ("back", "Back", "بازگشت"),
    ("retried", "jobs queued again", "کار دوباره در صف قرار گرفت"),
    ("admin_only", "Only an admin key sees this page.", "فقط کلید مدیر این صفحه را می‌بیند."),
    ("calendar", "Calendar", "تقویم"),
    ("language", "Language", "زبان"),
    ("times_in_tehran", "Times in Tehran time", "زمان‌ها به وقت تهران"),
    ("not_found", "Not found.", "پیدا نشد."),
    ("schedules", "Schedules", "زمان‌بندی‌ها"),
    ("dead", "Dead", "مرده"),
    ("in_rate", "In /s", "ورود در ثانیه"),
    ("out_rate", "Done /s", "پایان در ثانیه"),
    ("oldest_wait", "Oldest wait", "طولانی‌ترین انتظار"),
    ("workers", "Workers", "کارگرها"),
    ("no_workers", "No worker is running.", "هیچ کارگری در حال اجرا نیست."),
    ("failure_rate", "Failed attempts in the last minute", "تلاش‌های ناموفق در دقیقهٔ گذشته"),
    ("schedule", "Schedule", "زمان‌بندی"),
    ("name", "Name", "نام"),
    ("cron", "Cron expression", "عبارت cron"),
    (
        "cron_help",
        "minute hour day month weekday, e.g. 0 9 * * * (09:00 daily); or @daily, @hourly",
        "دقیقه ساعت روز ماه روزِ هفته، مثلاً 0 9 * * * (هر روز ساعت ۹)؛ یا @daily و @hourly",
    ),
    ("timezone", "Time zone", "منطقهٔ زمانی"),
    ("timing", "When", "زمان اجرا"),
    ("next_run", "Next run", "اجرای بعدی"),
    ("next_runs", "Next runs", "اجراهای بعدی"),
    ("last_fire", "Last run", "آخرین اجرا"),
    ("history", "History", "سابقه"),
    ("fire_at", "Fire time", "زمان اجرا"),
    ("trigger", "Run now", "اجرای فوری"),
    ("create", "Create", "ایجاد"),
    ("new_schedule", "New schedule", "زمان‌بندی تازه"),
    ("no_schedules", "No schedules yet.", "هنوز زمان‌بندی‌ای نیست."),
    ("gregorian", "Gregorian", "میلادی"),
    ("persian", "Persian", "شمسی"),
    ("forbidden", "This key may not do that.", "این کلید اجازهٔ این کار را ندارد."),
    (
        "no_jobs_yet",
        "None among the newest jobs looked through; the next page looks further back.",
        "در میان جدیدترین کارهای بررسی‌شده نبود؛ صفحهٔ بعد قدیمی‌ترها را می‌گردد.",
    ),
    ("every_tenant", "Every tenant", "همهٔ سازمان‌ها"),
    ("from", "Created from", "ایجاد از"),
    ("to", "until", "تا"),
    ("idempotency_key", "Idempotency key", "کلید یکتایی"),
    ("bad_time", "is not a date and time", "تاریخ و زمان درستی نیست"),
    ("discard_all", "Discard every dead job shown by this filter", "کنار گذاشتن همهٔ کارهای مردهٔ این فیلتر"),
    (
        "confirm_discard",
        "Discard these dead jobs? Their content is erased and they cannot be retried.",
        "این کارهای مرده کنار گذاشته شوند؟ محتوایشان پاک می‌شود و دیگر اجرا نمی‌شوند.",
    ),
    ("bulk_limit", "one action takes at most 10,000; repeat for the rest", "هر بار حداکثر ۱۰٬۰۰۰ کار؛ برای بقیه تکرار کنید"),
    ("discarded", "dead jobs discarded", "کار مرده کنار گذاشته شد"),
    ("recording", "Recording and transcript", "صدا و متن"),
    ("audio_missing", "The recording is not stored.", "فایل صدا ذخیره نشده است."),
    ("audio_erased", "The recording was erased.", "فایل صدا پاک شده است."),
    ("speakers", "Speakers", "گویندگان"),
    ("play_from_here", "Play from here", "پخش از این‌جا"),
    ("pipeline", "Pipeline", "زنجیره"),
    ("step", "Step", "مرحله"),
    ("webhooks", "Webhooks", "وب‌هوک‌ها"),
    ("endpoints", "Endpoints", "نشانی‌های دریافت"),
    ("endpoint", "Endpoint", "نشانی"),
    ("events", "Events", "رویدادها"),
    ("event", "Event", "رویداد"),
    ("every_event", "every event", "همهٔ رویدادها"),
    ("enabled", "Enabled", "فعال"),
    ("disabled", "Disabled", "غیرفعال"),
    ("failing_since", "Failing since", "خطا از"),
    ("no_endpoints", "No webhook endpoints.", "نشانی دریافتی ثبت نشده است."),
    ("messages", "Messages", "پیام‌ها"),
    ("message", "Message", "پیام"),
    ("no_messages", "No messages yet.", "هنوز پیامی نیست."),
    ("deliver_to", "Deliver to", "ارسال به"),
    ("every_subscribed", "every endpoint that wants it", "همهٔ نشانی‌هایی که آن را می‌خواهند"),
    ("replay", "Deliver again", "ارسال دوباره"),
    ("replayed", "Deliveries queued; their attempts appear below.", "ارسال‌ها در صف قرار گرفتند؛ تلاش‌هایشان در پایین می‌آید."),
    ("time", "Time", "زمان"),
    ("response", "Response", "پاسخ"),
    ("no_attempts", "No attempts yet.", "هنوز تلاشی نشده است."),
    ("payments", "Payments", "پرداخت‌ها"),
    ("payment", "Payment", "پرداخت"),
    ("gateway", "Gateway", "درگاه"),
    ("order", "Order", "سفارش"),
    ("amount", "Amount", "مبلغ"),
    ("reason", "Reason", "علت"),
    ("paid", "paid", "پرداخت‌شده"),
    ("ref_id", "Reference", "شمارهٔ پیگیری"),
    ("card", "Card", "کارت"),
    ("reversed_from", "Reversed from", "برگشته از"),
    ("checked", "Last checked", "آخرین بررسی"),
    ("verifications", "Verifications", "استعلام‌ها"),
    ("verification", "verification", "استعلام"),
    ("no_verifications", "Not verified yet.", "هنوز استعلام نشده است."),
    ("duplicate", "already recorded", "پیش‌تر ثبت شده"),
    ("callbacks", "Callbacks from the gateway", "بازگشت‌های درگاه"),
    ("no_callbacks", "No callbacks received.", "بازگشتی از درگاه نرسیده است."),
    ("no_payments", "No payments.", "پرداختی نیست."),
    ("show", "Show", "نمایش"),
    ("pause_tenant", "Pause this tenant in this queue", "توقف این سازمان در این صف"),
    ("tenant_limits", "Tenants: limits and usage", "سازمان‌ها: محدودیت‌ها و مصرف"),
    ("usage_periods", "Usage of the day and month", "مصرف روز و ماه"),
    ("weight", "Weight", "وزن"),
    ("request_rate", "Requests", "درخواست‌ها"),
    ("max_running", "At most running", "حداکثر هم‌زمان"),
    ("jobs_today", "Jobs today", "کارهای امروز"),
    ("sms_today", "SMS today", "پیامک امروز"),
    ("emails_today", "Emails today", "ایمیل امروز"),
    ("audio_month", "Audio this month", "صدای این ماه"),
    ("llm_month", "LLM tokens this month", "توکن مدل زبانی این ماه"),
    ("minutes", "min", "دقیقه"),
    (
        "limits_how",
        "Limits change with `peyk-api set-limits` or PATCH /v1/admin/tenants/{id}.",
        "محدودیت‌ها با `peyk-api set-limits` یا PATCH /v1/admin/tenants/{id} تغییر می‌کنند.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persian_dates_match_the_calendar() {
        let date = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        // Nowruz 1403 (leap year: Esfand has 30 days), 1404 and 1405.
        assert_eq!(to_persian(date(2024, 3, 20)), (1403, 1, 1));
        assert_eq!(to_persian(date(2025, 3, 20)), (1403, 12, 30));
        assert_eq!(to_persian(date(2025, 3, 21)), (1404, 1, 1));
        assert_eq!(to_persian(date(2026, 3, 20)), (1404, 12, 29));
        assert_eq!(to_persian(date(2026, 3, 21)), (1405, 1, 1));
        // The last day of the 31-day months, the first of the 30-day ones.
        assert_eq!(to_persian(date(2026, 9, 22)), (1405, 6, 31));
        assert_eq!(to_persian(date(2026, 9, 23)), (1405, 7, 1));
        assert_eq!(to_persian(date(2026, 12, 5)), (1405, 9, 14));
        assert_eq!(to_persian(date(1979, 2, 11)), (1357, 11, 22));
    }

    #[test]
    fn times_typed_in_a_browser_are_tehran_time() {
        let at = super::parse_tehran_time("2026-12-05T12:00").unwrap();
        assert_eq!(at.to_rfc3339(), "2026-12-05T08:30:00+00:00");
        assert_eq!(super::parse_tehran_time("2026-12-05T12:00:30").unwrap().to_rfc3339(), "2026-12-05T08:30:30+00:00");
        assert!(super::parse_tehran_time("05/12/2026").is_none());
    }

    #[test]
    fn times_are_shown_in_tehran_time() {
        let at: DateTime<Utc> = "2026-12-05T20:45:10Z".parse().unwrap();
        assert_eq!(format_time(at, Calendar::Gregorian, Language::English), "2026-12-06 00:15:10");
        assert_eq!(format_time(at, Calendar::Persian, Language::English), "1405-09-15 00:15:10");
        assert_eq!(format_time(at, Calendar::Persian, Language::Persian), "۱۴۰۵-۰۹-۱۵ ۰۰:۱۵:۱۰");
    }
}
