import { Client } from 'pg';

/** Drops a test's own PostgreSQL schema and all in it (a test's afterAll), on a connection of its own. */
export const dropSchema = async (connectionString: string, schema: string): Promise<void> => {
  const admin = new Client({ connectionString });
  await admin.connect();
  try {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await admin.end();
  }
};
