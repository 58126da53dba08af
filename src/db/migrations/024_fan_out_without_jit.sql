-- 023's fan-out planned each call at millions of rows (jsonb_array_elements counts as 100 rows a
-- call, twice over, for a batch of 500), past PostgreSQL's jit_above_cost, so every fan-out spent
-- about 480 ms compiling its plan with LLVM to number one write's events: on a server with JIT (the
-- default where PostgreSQL is built with LLVM) a notification left half a second after its commit.
-- Fan-outs are small and frequent; they never gain from JIT.
ALTER FUNCTION fan_out_subscription_events(integer) SET jit = off;
