DROP INDEX jobs_dead_letters_by_type;
DROP INDEX jobs_dead_letters;
