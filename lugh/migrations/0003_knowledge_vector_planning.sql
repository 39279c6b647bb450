-- Two things that let the planner find a silo's nearest chunks the cheap way.
--
-- Without statistics on vector_dims(embedding) it guesses that 0.5 % of a silo's rows match
-- `vector_dims(embedding) = <dim>`, and so under-prices reading the whole silo and sorting it.
CREATE STATISTICS chunks_embedding_dims ON (vector_dims(embedding)) FROM chunks;

-- A 384-dimension vector (1.5 kB) with its text and tsvector passes the 2 kB TOAST threshold,
-- and the vector, the largest column, was moved out of line: every exact distance then costs
-- two extra page reads. MAIN keeps it in the row (text and tsvector go out of line first).
ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE MAIN;
