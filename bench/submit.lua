-- wrk script: POST one webhook job per request (README, "Benchmarks").
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("PEYK_BENCH_KEY")
wrk.body = '{"type":"webhook","payload":{"url":"' .. os.getenv("PEYK_BENCH_SINK") ..
  '/hook","body":{"event":"order.paid","order_id":"A-1001","amount":250000,"currency":"IRR"}}}'
