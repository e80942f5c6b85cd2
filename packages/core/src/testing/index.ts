export { DeciderSpecification, type DeciderThen, type DeciderWhen } from "./decider-specification.ts";
