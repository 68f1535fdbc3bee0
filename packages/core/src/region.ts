import * as z from "./zod";

export const Region = z.string().check(z.regex(/^[a-z]{2}(-[a-z]+)+-\d$/, "an AWS region such as eu-west-1"));
