-- wrk script: POST one job per request (README, "Benchmarks"); the type is
-- PEYK_BENCH_JOB: webhook (to the sink) or sms (one number, via the sink
-- answering as Kavenegar). PEYK_BENCH_BATCH=N: N such jobs per request to
-- /v1/jobs/batch.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PEYK_BENCH_KEY")
if os.getenv("PEYK_BENCH_JOB") == "sms" then
  wrk.body = '{"type":"sms","payload":{"mode":"send","receptors":["09121234567"],' ..
    '"message":"بیمار گرامی، نوبت شما فردا ساعت ۱۰ صبح است."}}'
else
  wrk.body = '{"type":"webhook","payload":{"url":"' .. os.getenv("PEYK_BENCH_SINK") ..
    '/hook","body":{"event":"order.paid","order_id":"A-1001","amount":250000,"currency":"IRR"}}}'
end
local batch = tonumber(os.getenv("PEYK_BENCH_BATCH") or "")
if batch then
  local jobs = {}
  for i = 1, batch do jobs[i] = wrk.body end
  wrk.body = '{"jobs":[' .. table.concat(jobs, ",") .. ']}'
end
