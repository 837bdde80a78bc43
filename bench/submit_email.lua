-- wrk script: POST one email job per request (bench/email.sh): the built-in
-- Persian appointment reminder, rendered and sent by the worker.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PEYK_BENCH_KEY")
wrk.body = '{"type":"email","payload":{"to":["patient@example.com"],"template":"appointment-reminder",' ..
  '"language":"fa","variables":{"name":"مریم","date":"۱۴۰۵/۰۹/۰۱","time":"۱۰:۳۰","clinic":"درمانگاه آفتاب"}}}'
